"""Ingest assets against the real simulator: lake contents, replays, failures and secrets."""

import os
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imednet_assets.client.sync import fetch_all_sync
from imednet_assets.defs.ingest.assets import ENTITIES, ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import lake_schema
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.results import materialization
from imednet_assets.simulator import SimulatorServer
from imednet_assets_tests.defs.ingest.conftest import API_KEY, SECURITY_KEY, imednet_resource

pytestmark = pytest.mark.usefixtures("imednet_env")


def materialize(
    root: Path, instance: dg.DagsterInstance, study: str, selection=None, raise_on_error=True,
    **knobs: int,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ingest_assets, selection=selection, partition_key=study, instance=instance,
        raise_on_error=raise_on_error,
        resources={"imednet": imednet_resource(**knobs),
                   "lake_io_manager": LakeIOManager(root=str(root))},
    )


def lake_table(root: Path, entity: str, study_folder: str) -> pa.Table:
    files = sorted((root / entity / study_folder).rglob("*.parquet"))
    return pa.concat_tables(pq.read_table(f) for f in files)


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file() and ".locks" not in p.parts
    }


def leftovers(root: Path) -> list[str]:
    """Anything left in a staging or trash folder of any entity."""
    return sorted(
        str(p.relative_to(root)) for hidden in (".staging", ".trash")
        for p in root.glob(f"*/{hidden}/*")
    )


@pytest.fixture
def instance(sim: SimulatorServer) -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("study", sorted(sim.stats()))
    return inst


def test_study_lands_in_the_lake_as_the_api_serves_it(sim, instance, tmp_path):
    study = sorted(sim.stats())[0]
    stats = sim.stats()[study]
    result = materialize(tmp_path, instance, study)
    folder = f"study_key={study}"

    settings = imednet_resource().settings()
    for entity in ENTITIES:
        got = lake_table(tmp_path, entity, folder)
        if entity == "studies":
            expected = fetch_all_sync(settings, "studies", None)
            expected = expected.filter(pa.compute.equal(expected["study_key"], study))
        else:
            expected = fetch_all_sync(settings, entity, study)
        # the lake holds exactly what the client reads (timestamps in ms, as Parquet stores
        # them), sorted by the entity's id
        expected = expected.cast(lake_schema(expected.schema))
        id_column = ENTITIES[entity][0]
        assert got.sort_by(id_column).equals(expected.sort_by(id_column)), entity
        count = 1 if entity == "studies" else stats[entity]
        assert got.num_rows == count, entity
        meta = materialization(result, f"imednet/{entity}").metadata
        assert meta["dagster/row_count"].value == count, entity

    records_dir = tmp_path / "records" / folder
    by_form = {
        p.name.removeprefix("form_key="): pq.read_table(p).num_rows
        for p in records_dir.iterdir() if p.is_dir()
    }
    expected_by_form = {k: n for k, n in stats["records_by_form"].items() if n}
    assert by_form == expected_by_form
    meta = materialization(result, "imednet/records").metadata
    assert meta["rows_by_form"].value == dict(sorted(expected_by_form.items()))
    assert leftovers(tmp_path) == []


def test_replay_gives_byte_identical_files(sim, instance, tmp_path):
    study = sorted(sim.stats())[0]
    materialize(tmp_path, instance, study)
    first = {k: v[0] for k, v in snapshot(tmp_path).items()}
    materialize(tmp_path, instance, study)
    assert {k: v[0] for k, v in snapshot(tmp_path).items()} == first
    assert leftovers(tmp_path) == []


def test_replaying_one_study_leaves_the_other_untouched(sim, instance, tmp_path):
    one, other = sorted(sim.stats())
    materialize(tmp_path, instance, one)
    materialize(tmp_path, instance, other)
    before = {e: snapshot(tmp_path / e / f"study_key={other}") for e in ENTITIES}
    sim.advance(study_key=one, modify=3, add=2)
    materialize(tmp_path, instance, one)
    assert {e: snapshot(tmp_path / e / f"study_key={other}") for e in ENTITIES} == before
    assert lake_table(tmp_path, "records", f"study_key={one}").num_rows == (
        sim.stats()[one]["records"]
    )


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 503}, "ImednetServerError: "),
        ({"malformed": True}, "ImednetMalformedResponse: "),
    ],
    ids=["5xx-storm", "malformed-pages"],
)
def test_client_failure_mid_stream_keeps_the_previous_slice(
    sim, instance, tmp_path, fault, expected
):
    study = sorted(sim.stats())[0]
    records = ["imednet/records"]
    materialize(tmp_path, instance, study, records, page_size=10)
    before = snapshot(tmp_path)
    assert sim.stats()[study]["records"] > 30  # several pages, so page 2 is mid-stream

    sim.advance(study_key=study, modify=2, add=1)  # the source moved on; the lake must not
    # pages 0 and 1 answer, then a storm of bad answers outlasts the attempts
    sim.set_faults(fail_next=[{}, {}] + [fault] * 5)
    result = materialize(tmp_path, instance, study, records, raise_on_error=False,
                         page_size=10, concurrency=1, max_attempts=2)
    sim.set_faults(clear=True)

    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    message = error.cause.message
    target = tmp_path / "records" / f"study_key={study}"
    assert message.startswith(
        f"imednet_assets.defs.lake.io_manager.LakeWriteError: imednet/records: writing the lake "
        f"slice for study '{study}' (partition '{study}') to {target} failed, the previous slice "
        "is kept: " + expected
    )
    assert f"records for study {study}" in message
    if "status" in fault:
        assert "HTTP 503 after 2 attempts" in message
    assert snapshot(tmp_path) == before
    assert leftovers(tmp_path) == []


def test_secrets_never_reach_the_event_log(sim, instance, tmp_path):
    study = sorted(sim.stats())[0]
    ok = materialize(tmp_path, instance, study)
    sim.set_faults(fail_next=[{"status": 401}] * 3)
    failed = materialize(tmp_path, instance, study, raise_on_error=False, max_attempts=1)
    sim.set_faults(clear=True)
    assert ok.success and not failed.success

    texts = []
    for run_id in (ok.run_id, failed.run_id):
        texts += [repr(entry) for entry in instance.all_logs(run_id)]
        run = instance.get_run_by_id(run_id)
        texts.append(repr(run))
        texts.append(repr(instance.get_job_snapshot(run.job_snapshot_id)))
    assert len(texts) > 50
    assert not [t for t in texts if API_KEY in t or SECURITY_KEY in t]
    assert os.environ["IMEDNET_API_KEY"] == API_KEY  # the keys were really in play


def test_resource_and_settings_never_show_the_keys():
    resource = ImednetResource(base_url="http://127.0.0.1:1", api_key=API_KEY,
                               security_key=SECURITY_KEY)
    shown = [repr(resource), str(resource), repr(resource.settings()), str(resource.settings())]
    assert not [t for t in shown if API_KEY in t or SECURITY_KEY in t]
    assert repr(resource) == (
        "ImednetResource(base_url='http://127.0.0.1:1', api_key='***', security_key='***', "
        "concurrency=8, page_size=500, max_attempts=5, incremental_lag_s=5.0, "
        "probe_budget=100)"
    )
