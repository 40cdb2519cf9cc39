"""The lake IO manager on real files and on S3 on loopback (moto's server, a test double of S3):
layout, determinism, rolling, atomic replacement, failures and recovery. Tests about behaviour
run on both lakes (the `lake` fixture); tests about local folders run on the local lake only."""


import os
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.local import recover
from imednet_assets.defs.lake.slice import LakeSlice, LakeWrite, lake_schema
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.results import materialization
from imednet_assets_tests.defs.lake.lakes import (
    SCHEMA,
    Lake,
    LocalLake,
    batches_of,
    lake_asset,
    rows,
)


def run(
    asset, lake: Lake | Path, instance, key: str, raise_on_error=True, **io
) -> dg.ExecuteInProcessResult:
    manager = lake.io(**io) if isinstance(lake, Lake) else LakeIOManager(root=str(lake), **io)
    return dg.materialize(
        [asset], partition_key=key, instance=instance, raise_on_error=raise_on_error,
        resources={"lake_io_manager": manager},
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return result.get_step_failure_events()[0].step_failure_data.error.cause.message


def test_split_layout_encoding_sorting_and_metadata(lake, instance):
    data = rows("S/2", [(5, "VS"), (1, "A E/1"), (3, "VS"), (2, None), (4, "VS"), (9, "A E/1")])
    source = {"fn": lambda s: batches_of(data, 2)}
    result = run(lake_asset("records", source, "form_key"), lake, instance, "S/2",
                 row_group_rows=2)

    assert lake.file_names("records", "S/2") == [
        "form_key=A%20E%2F1/part-00000.parquet",
        "form_key=VS/part-00000.parquet",
        "form_key=__HIVE_DEFAULT_PARTITION__/part-00000.parquet",
    ]
    study = lake.read("records", "S/2").path
    vs = pq.read_table(study / "form_key=VS" / "part-00000.parquet")
    # rows 5,3,4 arrived out of order: the file is sorted by id, real columns keep true values
    assert vs.equals(rows("S/2", [(3, "VS"), (4, "VS"), (5, "VS")]))
    assert lake.table("records", "S/2").equals(data.sort_by("record_id"))
    assert lake.leftovers("records") == ["study_key=S%2F2"]

    meta = materialization(result, "imednet/records").metadata
    assert meta["dagster/row_count"].value == 6
    assert meta["rows_by_form"].value == {"A E/1": 2, "VS": 3, "__HIVE_DEFAULT_PARTITION__": 1}
    assert meta["path"].value == lake.location("records", "S/2")
    assert meta["files"].value == 3
    assert meta["preview"].value.splitlines()[0] == "| study_key | form_key | record_id | value |"


def test_local_layout_is_hive_folders_under_the_root(tmp_path, instance):
    data = rows("S/2", [(1, "A E/1"), (2, None), (3, "VS")])
    run(lake_asset("records", {"fn": lambda s: batches_of(data, 2)}, "form_key"), tmp_path,
        instance, "S/2")
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "records/study_key=S%2F2/form_key=A%20E%2F1/part-00000.parquet",
        "records/study_key=S%2F2/form_key=VS/part-00000.parquet",
        "records/study_key=S%2F2/form_key=__HIVE_DEFAULT_PARTITION__/part-00000.parquet",
    ]


def test_rolling_files_and_row_groups_are_fixed(lake, instance):
    data = rows("S1", [(i, None) for i in range(1, 8)])
    source = {"fn": lambda s: batches_of(data, 3)}
    run(lake_asset("sites", source, None), lake, instance, "S1",
        rows_per_file=5, row_group_rows=2)
    folder = lake.read("sites", "S1").path
    assert sorted(p.name for p in folder.iterdir()) == [
        "_manifest.json", "part-00000.parquet", "part-00001.parquet"
    ]
    first = pq.ParquetFile(folder / "part-00000.parquet").metadata
    assert [first.row_group(i).num_rows for i in range(first.num_row_groups)] == [2, 2, 1]
    assert first.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_table(folder / "part-00001.parquet").equals(data.slice(5))


def test_replay_is_byte_identical_whatever_the_batch_sizes(lake, instance):
    data = rows("S1", [(i, f"F{i % 3}") for i in range(50)])
    source = {"fn": lambda s: batches_of(data, 7)}
    asset = lake_asset("records", source, "form_key")
    run(asset, lake, instance, "S1", row_group_rows=4)
    before = {k: v[0] for k, v in lake.snapshot("records").items()}
    source["fn"] = lambda s: batches_of(data, 50)
    run(asset, lake, instance, "S1", row_group_rows=4)
    # on object storage too: no new version, the manifest object untouched
    assert {k: v[0] for k, v in lake.snapshot("records").items()} == before
    assert lake.table("records", "S1").equals(data.sort_by("record_id"))


def test_replay_replaces_the_slice_and_leaves_other_studies_untouched(lake, instance):
    tables = {"S1": rows("S1", [(1, "A"), (2, "B")]), "S/2": rows("S/2", [(7, "A")])}
    source = {"fn": lambda s: batches_of(tables[s], 10)}
    asset = lake_asset("records", source, "form_key")
    run(asset, lake, instance, "S1")
    run(asset, lake, instance, "S/2")
    other = lake.snapshot("records", "S/2")

    tables["S1"] = rows("S1", [(1, "A"), (3, "C")])  # form B is gone upstream
    run(asset, lake, instance, "S1")
    assert lake.file_names("records", "S1") == [
        "form_key=A/part-00000.parquet", "form_key=C/part-00000.parquet"
    ]
    assert lake.table("records", "S1").equals(tables["S1"])
    assert lake.snapshot("records", "S/2") == other


def test_local_replay_leaves_only_the_new_folders(tmp_path, instance):
    tables = {"S1": rows("S1", [(1, "A"), (2, "B")])}
    asset = lake_asset("records", {"fn": lambda s: batches_of(tables[s], 10)}, "form_key")
    run(asset, tmp_path, instance, "S1")
    tables["S1"] = rows("S1", [(1, "A"), (3, "C")])
    run(asset, tmp_path, instance, "S1")
    s1 = tmp_path / "records" / "study_key=S1"
    assert sorted(p.name for p in s1.iterdir()) == ["_manifest.json", "form_key=A", "form_key=C"]


def test_failure_mid_stream_keeps_the_old_slice_and_cleans_staging(lake, instance):
    good = rows("S1", [(1, "A"), (2, "B")])
    source = {"fn": lambda s: batches_of(good, 1)}
    asset = lake_asset("records", source, "form_key")
    run(asset, lake, instance, "S1")
    before = lake.snapshot("records")

    def broken(study: str):
        yield rows(study, [(1, "A"), (3, "C")]).to_batches()[0]
        raise ConnectionError("page 3 of records for study S1: HTTP 503 after 2 attempts")

    source["fn"] = broken
    result = run(asset, lake, instance, "S1", raise_on_error=False)
    assert not result.success
    assert failure_message(result) == (
        f"imednet_assets.defs.lake.io_manager.LakeWriteError: imednet/records: writing the lake "
        f"slice for study 'S1' (partition 'S1') to {lake.location('records', 'S1')} failed, the "
        "previous slice is kept: ConnectionError: page 3 of records for study S1: HTTP 503 after "
        "2 attempts\n"
    )
    assert lake.snapshot("records") == before
    assert lake.leftovers("records") == ["study_key=S1"]
    assert lake.table("records", "S1").equals(good)


def test_schema_mismatch_is_refused(lake, instance):
    bad = pa.table({"study_key": ["S1"], "record_id": [1]})
    source = {"fn": lambda s: iter(bad.to_batches())}
    result = run(lake_asset("sites", source, None), lake, instance, "S1",
                 raise_on_error=False)
    assert not result.success
    assert "batch columns ['study_key', 'record_id'] differ from the schema" in (
        failure_message(result)
    )
    with pytest.raises(FileNotFoundError):
        lake.read("sites", "S1")


def test_empty_study_keeps_a_schema_file_or_an_empty_split_folder(lake, instance):
    source = {"fn": lambda s: iter(())}
    run(lake_asset("sites", source, None), lake, instance, "S1")
    run(lake_asset("records", source, "form_key"), lake, instance, "S1")
    assert lake.file_names("sites", "S1") == ["part-00000.parquet"]
    assert lake.table("sites", "S1").equals(SCHEMA.empty_table())
    records = lake.read("records", "S1")
    assert records.files == []
    assert os.listdir(records.path) == ["_manifest.json"]


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


def test_load_input_gives_a_readable_slice(lake, instance):
    data = rows("S/2", [(2, "B"), (1, "A"), (3, "A")])
    upstream = lake_asset("records", {"fn": lambda s: batches_of(data, 2)}, "form_key")
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=study_partitions, ins={"records": dg.AssetIn(["imednet", "records"])})
    def reader(records: LakeSlice) -> None:
        seen["slice"] = records

    dg.materialize([upstream, reader], partition_key="S/2", instance=instance,
                   resources={"lake_io_manager": lake.io(), "io_manager": dg.mem_io_manager})
    lake_slice = seen["slice"]
    assert isinstance(lake_slice, LakeSlice)
    assert (lake_slice.entity, lake_slice.study_key) == ("records", "S/2")
    if isinstance(lake, LocalLake):
        assert lake_slice.path == lake.root / "records" / "study_key=S%2F2"
    assert [f.relative_to(lake_slice.path).as_posix() for f in lake_slice.files] == [
        "form_key=A/part-00000.parquet", "form_key=B/part-00000.parquet"
    ]
    assert lake_slice.schema.equals(SCHEMA)
    assert lake_slice.num_rows == 3
    assert lake_slice.manifest is not None and lake_slice.manifest.rows == 3
    assert lake_slice.dataset().to_table().sort_by("record_id").equals(data.sort_by("record_id"))
    got = duckdb.sql(
        f"SELECT * FROM read_parquet('{lake_slice.glob()}', hive_partitioning=false) "
        "ORDER BY record_id"
    ).arrow()
    if isinstance(got, pa.RecordBatchReader):
        got = got.read_all()
    assert got.equals(data.sort_by("record_id"))


def test_missing_slice_names_entity_study_and_path(lake):
    with pytest.raises(FileNotFoundError) as err:
        lake.read("sites", "S9")
    assert str(err.value) == (
        f"no lake slice of sites for study 'S9' at {lake.location('sites', 'S9')}: "
        "materialize imednet/sites for partition 'S9' first"
    )


def test_multi_partition_run_writes_one_slice_per_study(lake, instance):
    tables = {"S1": rows("S1", [(1, "A")]), "S/2": rows("S/2", [(2, "A"), (3, "B")])}
    asset = lake_asset("records", {"fn": lambda s: batches_of(tables[s], 5)}, "form_key")
    result = dg.materialize(
        [asset], instance=instance,
        tags={"dagster/asset_partition_range_start": "S1",
              "dagster/asset_partition_range_end": "S/2"},
        resources={"lake_io_manager": lake.io()},
    )
    for study in ("S1", "S/2"):
        assert lake.table("records", study).equals(tables[study])
    meta = materialization(result, "imednet/records").metadata
    assert meta["rows_by_study"].value == {"S1": 1, "S/2": 2}


def test_second_timestamps_are_stored_as_ms_and_read_back_the_same(lake, instance):
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

    run(subjects, lake, instance, "S1")
    stored = lake_schema(schema)
    assert stored.field("keywords").type == pa.list_(pa.struct([("date_added",
                                                                  pa.timestamp("ms"))]))
    lake_slice = lake.read("subjects", "S1")
    assert lake_slice.schema.equals(stored)
    assert lake_slice.dataset().to_table().equals(data.cast(stored))


def test_rows_of_another_study_are_refused(lake, instance):
    source = {"fn": lambda s: batches_of(rows("S/2", [(1, "A")]), 5)}
    result = run(lake_asset("records", source, "form_key"), lake, instance, "S1",
                 raise_on_error=False)
    assert not result.success
    assert failure_message(result).endswith(
        "ValueError: a row of study 'S/2' came in for study 'S1'\n"
    )
    assert lake.snapshot("records") == {}
