"""Incremental refreshes of the lake against the real simulator: changes land by key, untouched
folders keep their bytes, purges fall back to a full refresh, and the end state always equals a
full refresh from scratch."""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from imednet_assets.defs.ingest.assets import ENTITIES, ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.results import materialization
from imednet_assets_tests.defs.ingest.conftest import imednet_resource

pytestmark = pytest.mark.usefixtures("imednet_env")


def ingest(root: Path, instance: dg.DagsterInstance, study: str, mode: str = FULL,
           tags: dict[str, str] | None = None, **knobs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ingest_assets, partition_key=study, instance=instance,
        tags={**(tags or {}), **mode_tags(mode)},
        resources={"imednet": imednet_resource(**knobs),
                   "lake_io_manager": LakeIOManager(root=str(root))},
    )


def lake_tables(root: Path, study: str) -> dict[str, pa.Table]:
    """Every entity's slice, rows sorted by id: what readers see, whatever the file layout."""
    out = {}
    for entity, (sort_by, _) in ENTITIES.items():
        lake = LakeSlice.read(root, entity, study, None)
        out[entity] = lake.dataset().to_table().sort_by(sort_by)
    return out


def parquet_bytes(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_ino)
            for p in sorted(folder.rglob("*.parquet"))}


def meta(result: dg.ExecuteInProcessResult, entity: str) -> dict:
    values = materialization(result, f"imednet/{entity}").metadata
    return {k: v.value for k, v in values.items()}


def assert_like_a_fresh_full_refresh(root: Path, study: str, tmp_path: Path) -> None:
    fresh = tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}"
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [study])
    ingest(fresh, instance, study)
    mine, theirs = lake_tables(root, study), lake_tables(fresh, study)
    for entity in ENTITIES:
        assert mine[entity].equals(theirs[entity]), entity


@pytest.fixture
def instance(sim) -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("study", sorted(sim.stats()))
    return inst


def test_changes_land_by_key_and_untouched_folders_keep_their_bytes(sim, instance, tmp_path):
    study = sorted(sim.stats())[0]
    lake = tmp_path / "lake"
    ingest(lake, instance, study)
    records = lake / "records" / f"study_key={study}"
    before = {p.name: parquet_bytes(p) for p in records.iterdir() if p.is_dir()}
    manifest = SliceManifest.read(records)

    changed = sim.advance(study_key=study, modify=2, add=1, delete=1, delete_subjects=1)
    result = ingest(lake, instance, study, INCREMENTAL)

    got = meta(result, "records")
    assert got["mode"] == INCREMENTAL
    assert (got["rows_inserted"], got["rows_updated"], got["rows_deleted"]) == (1, 3, 1)
    assert got["watermark_before"] == manifest.watermark
    assert got["watermark_after"] > manifest.watermark
    after_manifest = SliceManifest.read(records)
    assert after_manifest.sequence == manifest.sequence + 1
    assert after_manifest.lake_id == manifest.lake_id
    touched = set(changed["modified"] + changed["added"] + changed["deleted"])
    assert set(after_manifest.keys_since(manifest.token)) == touched
    assert meta(result, "subjects")["rows_deleted"] == 1
    # the audit trail only grows: its merge compares with the rows of the read window alone,
    # and the window's overlap with the last read (rows held already) is dropped, not doubled
    trail = meta(result, "record_revisions")
    assert trail["mode"] == INCREMENTAL
    read = int(trail["mode_reason"].split()[1])
    assert read > trail["rows_inserted"] > 0
    assert (trail["rows_updated"], trail["rows_deleted"]) == (0, 0)
    # forms none of the changed records belong to keep their files (same inode: not rewritten)
    table = lake_tables(lake, study)["records"]
    forms_touched = set(table.filter(pa.compute.is_in(table["record_id"], pa.array(
        sorted(touched)))).column("form_key").to_pylist())
    untouched = [name for name in before if name.removeprefix("form_key=") not in forms_touched]
    assert untouched
    for name in untouched:
        assert parquet_bytes(records / name) == before[name]
    assert_like_a_fresh_full_refresh(lake, study, tmp_path)


def test_nothing_changed_writes_nothing(sim, instance, tmp_path):
    study = sorted(sim.stats())[0]
    lake = tmp_path / "lake"
    ingest(lake, instance, study)
    before = {str(p.relative_to(lake)): (p.read_bytes(), p.stat().st_mtime_ns)
              for p in lake.rglob("*") if p.is_file() and ".locks" not in p.parts}
    result = ingest(lake, instance, study, INCREMENTAL)
    after = {str(p.relative_to(lake)): (p.read_bytes(), p.stat().st_mtime_ns)
             for p in lake.rglob("*") if p.is_file() and ".locks" not in p.parts}
    assert after == before
    for entity in ENTITIES:
        assert meta(result, entity)["changed"] is False, entity
    # a full replay of unchanged data keeps the bytes (and the sequence) too
    ingest(lake, instance, study, FULL)
    assert {k: v[0] for k, v in before.items()} == {
        str(p.relative_to(lake)): p.read_bytes()
        for p in lake.rglob("*") if p.is_file() and ".locks" not in p.parts
    }


def test_purged_records_turn_the_run_into_a_full_refresh(sim, instance, tmp_path):
    study = sorted(sim.stats())[0]
    lake = tmp_path / "lake"
    ingest(lake, instance, study)
    sim.advance(study_key=study, purge=2, modify=1)
    result = ingest(lake, instance, study, INCREMENTAL)
    got = meta(result, "records")
    assert got["mode"] == FULL
    assert "purged upstream" in got["mode_reason"]
    assert got["dagster/row_count"] == sim.stats()[study]["records"]
    manifest = SliceManifest.read(lake / "records" / f"study_key={study}")
    assert manifest.log[-1].kind == FULL
    assert_like_a_fresh_full_refresh(lake, study, tmp_path)


def test_a_slice_without_a_watermark_gets_a_full_refresh(sim, instance, tmp_path):
    study = sorted(sim.stats())[0]
    result = ingest(tmp_path / "lake", instance, study, INCREMENTAL)
    got = meta(result, "records")
    assert (got["mode"], got["mode_reason"]) == (FULL, "the slice has no watermark yet")


def test_other_studies_are_untouched(sim, instance, tmp_path):
    one, other = sorted(sim.stats())
    lake = tmp_path / "lake"
    ingest(lake, instance, one)
    ingest(lake, instance, other)
    theirs = {e: parquet_bytes(lake / e / f"study_key={other}") for e in ENTITIES}
    sim.advance(study_key=one, modify=3, add=2)
    ingest(lake, instance, one, INCREMENTAL)
    assert {e: parquet_bytes(lake / e / f"study_key={other}") for e in ENTITIES} == theirs
    assert_like_a_fresh_full_refresh(lake, one, tmp_path)
