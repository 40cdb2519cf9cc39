"""The lake IO manager on real files: layout, determinism, rolling, atomic swap and recovery."""


import os
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager, recover
from imednet_assets.defs.lake.slice import LakeSlice, LakeWrite, lake_schema
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.results import materialization

SCHEMA = pa.schema(
    [("study_key", pa.string()), ("form_key", pa.string()), ("record_id", pa.int64()),
     ("value", pa.string())]
)
Source = Callable[[str], Iterator[pa.RecordBatch]]


def rows(study: str, ids_forms: list[tuple[int, str | None]]) -> pa.Table:
    return pa.table(
        {
            "study_key": [study] * len(ids_forms),
            "form_key": [f for _, f in ids_forms],
            "record_id": [i for i, _ in ids_forms],
            "value": [f"v{i}" for i, _ in ids_forms],
        },
        schema=SCHEMA,
    )


def lake_asset(entity: str, source: dict[str, Source], split_by: str | None) -> dg.AssetsDefinition:
    """A study-partitioned asset streaming `source[study](study)` to the lake."""

    @dg.asset(key=["imednet", entity], partitions_def=study_partitions,
              io_manager_key="lake_io_manager")
    def _asset(context: dg.AssetExecutionContext):
        writes = {
            s: LakeWrite(entity, s, SCHEMA, source["fn"](s), "record_id", split_by)
            for s in context.partition_keys
        }
        return writes if len(writes) > 1 else writes[context.partition_key]

    return _asset


def batches_of(table: pa.Table, size: int) -> Iterator[pa.RecordBatch]:
    yield from table.to_batches(max_chunksize=size)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("study", ["S1", "S/2"])
    return inst


def run(
    asset, root: Path, instance, key: str, raise_on_error=True, **io
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset], partition_key=key, instance=instance, raise_on_error=raise_on_error,
        resources={"lake_io_manager": LakeIOManager(root=str(root), **io)},
    )


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` (relative path -> bytes, mtime_ns)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def leftovers(entity_dir: Path) -> list[str]:
    """Study folders plus anything left in staging or trash (lock files are expected)."""
    names = sorted(n for n in os.listdir(entity_dir) if not n.startswith("."))
    for hidden in (".staging", ".trash"):
        if (entity_dir / hidden).exists():
            names += [f"{hidden}/{n}" for n in sorted(os.listdir(entity_dir / hidden))]
    return names


def test_split_layout_encoding_sorting_and_metadata(tmp_path, instance):
    data = rows("S/2", [(5, "VS"), (1, "A E/1"), (3, "VS"), (2, None), (4, "VS"), (9, "A E/1")])
    source = {"fn": lambda s: batches_of(data, 2)}
    result = run(lake_asset("records", source, "form_key"), tmp_path, instance, "S/2",
                 row_group_rows=2)

    study = tmp_path / "records" / "study_key=S%2F2"
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "records/study_key=S%2F2/form_key=A%20E%2F1/part-00000.parquet",
        "records/study_key=S%2F2/form_key=VS/part-00000.parquet",
        "records/study_key=S%2F2/form_key=__HIVE_DEFAULT_PARTITION__/part-00000.parquet",
    ]
    vs = pq.read_table(study / "form_key=VS" / "part-00000.parquet")
    # rows 5,3,4 arrived out of order: the file is sorted by id, real columns keep true values
    assert vs.equals(rows("S/2", [(3, "VS"), (4, "VS"), (5, "VS")]))
    whole = pa.concat_tables(pq.read_table(f) for f in sorted(study.rglob("*.parquet")))
    assert whole.sort_by("record_id").equals(data.sort_by("record_id"))
    assert leftovers(tmp_path / "records") == ["study_key=S%2F2"]

    meta = materialization(result, "imednet/records").metadata
    assert meta["dagster/row_count"].value == 6
    assert meta["rows_by_form"].value == {"A E/1": 2, "VS": 3, "__HIVE_DEFAULT_PARTITION__": 1}
    assert meta["path"].value == str(study)
    assert meta["files"].value == 3
    assert meta["preview"].value.splitlines()[0] == "| study_key | form_key | record_id | value |"


def test_rolling_files_and_row_groups_are_fixed(tmp_path, instance):
    data = rows("S1", [(i, None) for i in range(1, 8)])
    source = {"fn": lambda s: batches_of(data, 3)}
    run(lake_asset("sites", source, None), tmp_path, instance, "S1",
        rows_per_file=5, row_group_rows=2)
    folder = tmp_path / "sites" / "study_key=S1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "_manifest.json", "part-00000.parquet", "part-00001.parquet"
    ]
    first = pq.ParquetFile(folder / "part-00000.parquet").metadata
    assert [first.row_group(i).num_rows for i in range(first.num_row_groups)] == [2, 2, 1]
    assert first.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_table(folder / "part-00001.parquet").equals(data.slice(5))


def test_replay_is_byte_identical_whatever_the_batch_sizes(tmp_path, instance):
    data = rows("S1", [(i, f"F{i % 3}") for i in range(50)])
    source = {"fn": lambda s: batches_of(data, 7)}
    asset = lake_asset("records", source, "form_key")
    run(asset, tmp_path, instance, "S1", row_group_rows=4)
    before = {k: v[0] for k, v in snapshot(tmp_path / "records").items()}
    source["fn"] = lambda s: batches_of(data, 50)
    run(asset, tmp_path, instance, "S1", row_group_rows=4)
    assert {k: v[0] for k, v in snapshot(tmp_path / "records").items()} == before


def test_replay_replaces_the_slice_and_leaves_other_studies_untouched(tmp_path, instance):
    tables = {"S1": rows("S1", [(1, "A"), (2, "B")]), "S/2": rows("S/2", [(7, "A")])}
    source = {"fn": lambda s: batches_of(tables[s], 10)}
    asset = lake_asset("records", source, "form_key")
    run(asset, tmp_path, instance, "S1")
    run(asset, tmp_path, instance, "S/2")
    other = snapshot(tmp_path / "records" / "study_key=S%2F2")

    tables["S1"] = rows("S1", [(1, "A"), (3, "C")])  # form B is gone upstream
    run(asset, tmp_path, instance, "S1")
    s1 = tmp_path / "records" / "study_key=S1"
    assert sorted(p.name for p in s1.iterdir()) == ["_manifest.json", "form_key=A", "form_key=C"]
    assert pa.concat_tables(pq.read_table(f) for f in sorted(s1.rglob("*.parquet"))).equals(
        tables["S1"]
    )
    assert snapshot(tmp_path / "records" / "study_key=S%2F2") == other


def test_failure_mid_stream_keeps_the_old_slice_and_cleans_staging(tmp_path, instance):
    good = rows("S1", [(1, "A"), (2, "B")])
    source = {"fn": lambda s: batches_of(good, 1)}
    asset = lake_asset("records", source, "form_key")
    run(asset, tmp_path, instance, "S1")
    before = snapshot(tmp_path / "records")

    def broken(study: str) -> Iterator[pa.RecordBatch]:
        yield rows(study, [(1, "A"), (3, "C")]).to_batches()[0]
        raise ConnectionError("page 3 of records for study S1: HTTP 503 after 2 attempts")

    source["fn"] = broken
    result = run(asset, tmp_path, instance, "S1", raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.cause.message
    target = tmp_path / "records" / "study_key=S1"
    assert message == (
        f"imednet_assets.defs.lake.io_manager.LakeWriteError: imednet/records: writing the lake "
        f"slice for study 'S1' (partition 'S1') to {target} failed, the previous slice is kept: "
        "ConnectionError: page 3 of records for study S1: HTTP 503 after 2 attempts\n"
    )
    assert snapshot(tmp_path / "records") == before
    assert leftovers(tmp_path / "records") == ["study_key=S1"]


def test_schema_mismatch_is_refused(tmp_path, instance):
    bad = pa.table({"study_key": ["S1"], "record_id": [1]})
    source = {"fn": lambda s: iter(bad.to_batches())}
    result = run(lake_asset("sites", source, None), tmp_path, instance, "S1",
                 raise_on_error=False)
    assert not result.success
    assert "batch columns ['study_key', 'record_id'] differ from the schema" in (
        result.get_step_failure_events()[0].step_failure_data.error.cause.message
    )
    assert not (tmp_path / "sites" / "study_key=S1").exists()


def test_empty_study_keeps_a_schema_file_or_an_empty_split_folder(tmp_path, instance):
    source = {"fn": lambda s: iter(())}
    run(lake_asset("sites", source, None), tmp_path, instance, "S1")
    run(lake_asset("records", source, "form_key"), tmp_path, instance, "S1")
    site_file = tmp_path / "sites" / "study_key=S1" / "part-00000.parquet"
    assert pq.read_table(site_file).equals(SCHEMA.empty_table())
    assert os.listdir(tmp_path / "records" / "study_key=S1") == ["_manifest.json"]


def test_recover_finishes_a_half_done_swap(tmp_path):
    folder = tmp_path / "sites" / "study_key=S1"
    folder.mkdir(parents=True)
    (folder / "part-00000.parquet").write_bytes(b"old")
    trash = tmp_path / "sites" / ".trash"
    trash.mkdir()
    # crash after "old -> trash", before "new -> place"
    os.rename(folder, trash / "study_key=S1.abc")
    recover(tmp_path, "sites", "S1")
    assert (folder / "part-00000.parquet").read_bytes() == b"old"
    assert os.listdir(trash) == []
    # crash after "new -> place", before "remove trash"
    (trash / "study_key=S1.def").mkdir()
    (trash / "study_key=S10.xyz").mkdir()  # another study's, not ours to touch
    recover(tmp_path, "sites", "S1")
    assert (folder / "part-00000.parquet").read_bytes() == b"old"
    assert os.listdir(trash) == ["study_key=S10.xyz"]


def test_staging_left_by_a_dead_writer_is_swept_by_the_next_writer_of_that_study(
    tmp_path, instance
):
    data = rows("S1", [(1, None)])
    asset = lake_asset("sites", {"fn": lambda s: batches_of(data, 1)}, None)
    staging = tmp_path / "sites" / ".staging"
    dead = staging / "study_key=S1" / "killed-run-deadbeef" / "study_key=S1"
    dead.mkdir(parents=True)
    (dead / "part-00000.parquet").write_bytes(b"half a file")
    other = staging / "study_key=S2" / "live-run-cafe" / "study_key=S2"
    other.mkdir(parents=True)  # another study's writer may be alive: not ours to touch
    run(asset, tmp_path, instance, "S1")
    assert sorted(str(p.relative_to(staging)) for p in staging.rglob("*")) == [
        "study_key=S2",
        "study_key=S2/live-run-cafe",
        "study_key=S2/live-run-cafe/study_key=S2",
    ]
    assert pq.read_table(tmp_path / "sites" / "study_key=S1").num_rows == 1


def test_load_input_gives_a_readable_slice(tmp_path, instance):
    data = rows("S/2", [(2, "B"), (1, "A"), (3, "A")])
    upstream = lake_asset("records", {"fn": lambda s: batches_of(data, 2)}, "form_key")
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=study_partitions, ins={"records": dg.AssetIn(["imednet", "records"])})
    def reader(records: LakeSlice) -> None:
        seen["slice"] = records

    io = LakeIOManager(root=str(tmp_path))
    dg.materialize([upstream, reader], partition_key="S/2", instance=instance,
                   resources={"lake_io_manager": io, "io_manager": dg.mem_io_manager})
    lake_slice = seen["slice"]
    assert isinstance(lake_slice, LakeSlice)
    assert (lake_slice.entity, lake_slice.study_key) == ("records", "S/2")
    assert lake_slice.path == tmp_path / "records" / "study_key=S%2F2"
    assert [f.relative_to(lake_slice.path).as_posix() for f in lake_slice.files] == [
        "form_key=A/part-00000.parquet", "form_key=B/part-00000.parquet"
    ]
    assert lake_slice.schema.equals(SCHEMA)
    assert lake_slice.num_rows == 3
    assert lake_slice.dataset().to_table().sort_by("record_id").equals(data.sort_by("record_id"))
    got = duckdb.sql(
        f"SELECT * FROM read_parquet('{lake_slice.glob()}', hive_partitioning=false) "
        "ORDER BY record_id"
    ).arrow()
    if isinstance(got, pa.RecordBatchReader):
        got = got.read_all()
    assert got.equals(data.sort_by("record_id"))


def test_missing_slice_names_entity_study_and_path(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        LakeSlice.read(tmp_path, "sites", "S9", None)
    assert str(err.value) == (
        f"no lake slice of sites for study 'S9' at {tmp_path / 'sites' / 'study_key=S9'}: "
        "materialize imednet/sites for partition 'S9' first"
    )


def test_multi_partition_run_writes_one_slice_per_study(tmp_path, instance):
    tables = {"S1": rows("S1", [(1, "A")]), "S/2": rows("S/2", [(2, "A"), (3, "B")])}
    asset = lake_asset("records", {"fn": lambda s: batches_of(tables[s], 5)}, "form_key")
    result = dg.materialize(
        [asset], instance=instance,
        tags={"dagster/asset_partition_range_start": "S1",
              "dagster/asset_partition_range_end": "S/2"},
        resources={"lake_io_manager": LakeIOManager(root=str(tmp_path))},
    )
    for study, folder in (("S1", "study_key=S1"), ("S/2", "study_key=S%2F2")):
        files = sorted((tmp_path / "records" / folder).rglob("*.parquet"))
        assert pa.concat_tables(pq.read_table(f) for f in files).equals(tables[study])
    meta = materialization(result, "imednet/records").metadata
    assert meta["rows_by_study"].value == {"S1": 1, "S/2": 2}


def test_second_timestamps_are_stored_as_ms_and_read_back_the_same(tmp_path, instance):
    item = pa.struct([("date_added", pa.timestamp("s"))])
    schema = pa.schema([("study_key", pa.string()), ("record_id", pa.int64()),
                        ("date_created", pa.timestamp("s")), ("keywords", pa.list_(item))])
    data = pa.table({"study_key": ["S1"], "record_id": [1], "date_created": [1_700_000_000],
                     "keywords": [[{"date_added": 1_700_000_001}]]}, schema=schema)

    @dg.asset(key=["imednet", "subjects"], partitions_def=study_partitions,
              io_manager_key="lake_io_manager")
    def subjects(context: dg.AssetExecutionContext):
        return LakeWrite("subjects", context.partition_key, schema, iter(data.to_batches()),
                         "record_id")

    run(subjects, tmp_path, instance, "S1")
    stored = lake_schema(schema)
    assert stored.field("keywords").type == pa.list_(pa.struct([("date_added",
                                                                  pa.timestamp("ms"))]))
    lake_slice = LakeSlice.read(tmp_path, "subjects", "S1", None)
    assert lake_slice.schema.equals(stored)
    assert lake_slice.dataset().to_table().equals(data.cast(stored))


def test_rows_of_another_study_are_refused(tmp_path, instance):
    source = {"fn": lambda s: batches_of(rows("S/2", [(1, "A")]), 5)}
    result = run(lake_asset("records", source, "form_key"), tmp_path, instance, "S1",
                 raise_on_error=False)
    assert not result.success
    assert result.get_step_failure_events()[0].step_failure_data.error.cause.message.endswith(
        "ValueError: a row of study 'S/2' came in for study 'S1'\n"
    )
    assert list(tmp_path.rglob("*.parquet")) == []
