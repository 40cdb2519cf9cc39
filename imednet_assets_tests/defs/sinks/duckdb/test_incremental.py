"""DuckDB under incremental refreshes, against the real simulator: changed keys applied in one
transaction, nothing written when nothing changed, a purge rewrites the study."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import LakeSlice, changes_dir
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets.demo import QUIET_CONSOLE
from imednet_assets_tests.defs.ingest.conftest import imednet_env, imednet_resource, sim  # noqa: F401
from imednet_assets_tests.defs.sinks.duckdb.conftest import Sink

pytestmark = pytest.mark.usefixtures("imednet_env")


def refresh(root: Path, instance: dg.DagsterInstance, study: str,
            mode: str, selection: list[str] | None = None) -> dict[str, dict]:
    """Ingest and DuckDB assets (`selection`: only these) for `study` into `root`; the DuckDB
    assets' metadata."""
    result = dg.materialize(
        [*ingest_assets, *duckdb_assets], selection=selection, partition_key=study,
        instance=instance,
        tags=mode_tags(mode), run_config=QUIET_CONSOLE,
        resources={"imednet": imednet_resource(),
                   "lake_io_manager": LakeIOManager(root=str(root / "lake")),
                   **duckdb_resources(str(root / "sink.duckdb"))},
    )
    return {m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
            for m in (e.step_materialization_data.materialization
                      for e in result.get_asset_materialization_events())
            if m.asset_key.path[0] == "duckdb"}


def study_tables(root: Path, study: str) -> dict[str, list[tuple]]:
    sink = Sink(root)
    return {t: sink.dump(t, study) for t in sink.tables()}


def test_apply_then_skip_then_purge_rewrite_each_equal_a_fresh_refresh(sim, tmp_path):  # noqa: F811
    one, other = sorted(sim.stats())
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [one, other])
    kept = tmp_path / "kept"
    refresh(kept, instance, one, FULL)
    refresh(kept, instance, other, FULL)
    theirs = study_tables(kept, other)

    def fresh(name: str) -> dict[str, list[tuple]]:
        refresh(tmp_path / name, instance, one, FULL)
        return study_tables(tmp_path / name, one)

    sim.advance(study_key=one, modify=2, add=1, delete=1, delete_subjects=1)
    meta = refresh(kept, instance, one, INCREMENTAL)
    assert meta["form_tables"]["mode"] == "apply"
    assert meta["records_long"]["mode"] == "apply"
    assert meta["form_tables"]["keys_changed"] == 4
    assert meta["subjects"]["mode"] == "apply"
    assert meta["forms"]["mode"] == meta["variables"]["mode"] == "skip"
    assert study_tables(kept, one) == fresh("fresh-apply")

    before = (kept / "sink.duckdb").read_bytes()
    meta = refresh(kept, instance, one, INCREMENTAL)
    assert {m["mode"] for m in meta.values()} == {"skip"}
    assert {m["rows_inserted"] + m["rows_deleted"] for m in meta.values()} == {0}
    assert study_tables(kept, one) == fresh("fresh-apply")
    assert (kept / "sink.duckdb").read_bytes() == before  # nothing written

    sim.advance(study_key=one, purge=1)
    meta = refresh(kept, instance, one, INCREMENTAL)
    assert meta["form_tables"]["mode"] == "rewrite"
    assert study_tables(kept, one) == fresh("fresh-purge")
    assert study_tables(kept, other) == theirs


def three_records_changed(simulator, tmp_path: Path, selection: list[str],
                          ) -> tuple[str, dg.DagsterInstance, Path]:
    """A study refreshed in full into `kept`, then 3 records changed upstream and `selection`
    refreshed incrementally: (study, instance, kept)."""
    study = sorted(simulator.stats())[0]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [study])
    kept = tmp_path / "kept"
    refresh(kept, instance, study, FULL)
    simulator.advance(study_key=study, modify=3)
    refresh(kept, instance, study, INCREMENTAL, selection=selection)
    return study, instance, kept


def test_assets_behind_by_different_changes_each_apply_their_own(sim, tmp_path):  # noqa: F811
    """records_long and the form tables share the changed rows their step reads only when they
    apply the same changes: the form tables, one change behind, read their own."""
    study, instance, kept = three_records_changed(
        sim, tmp_path, ["imednet/records", "duckdb/records_long"])
    sim.advance(study_key=study, modify=3)
    meta = refresh(kept, instance, study, INCREMENTAL)
    assert meta["records_long"]["mode"] == meta["form_tables"]["mode"] == "apply"
    assert meta["records_long"]["keys_changed"] == 3
    assert meta["form_tables"]["keys_changed"] > 3  # both changes
    refresh(tmp_path / "fresh", instance, study, FULL)
    assert study_tables(kept, study) == study_tables(tmp_path / "fresh", study)


def test_an_apply_reads_the_rows_the_lake_merge_kept_and_searches_the_slice_without_them(
    sim, tmp_path  # noqa: F811
):
    study, instance, kept = three_records_changed(sim, tmp_path, ["imednet/records"])
    records = LakeSlice.read(kept / "lake", "records", study, None)
    [changes] = list(changes_dir(records.path).iterdir())
    original = pq.read_table(changes)
    # a mark only the kept rows carry: the apply shows it when it read them
    at = original.schema.get_field_index("record_status")
    marked = original.set_column(at, "record_status",
                                 pa.array(["marked"] * original.num_rows, pa.string()))
    pq.write_table(marked, changes)
    copy = tmp_path / "copy"
    shutil.copytree(kept, copy)
    shutil.rmtree(changes_dir(LakeSlice.read(copy / "lake", "records", study, None).path))

    meta = refresh(kept, instance, study, INCREMENTAL, selection=["duckdb/form_tables"])
    assert meta["form_tables"]["mode"] == "apply"
    statuses = {row[0] for t in Sink(kept).tables() if t.startswith("form_")
                for row in Sink(kept).query(f'SELECT DISTINCT record_status FROM "{t}"')}
    assert "marked" in statuses

    meta = refresh(copy, instance, study, INCREMENTAL, selection=["duckdb/form_tables"])
    assert meta["form_tables"]["mode"] == "apply"
    refresh(tmp_path / "fresh", instance, study, FULL)
    forms = {t: rows for t, rows in study_tables(copy, study).items() if t.startswith("form_")}
    assert forms == {t: rows for t, rows in study_tables(tmp_path / "fresh", study).items()
                     if t.startswith("form_")}
