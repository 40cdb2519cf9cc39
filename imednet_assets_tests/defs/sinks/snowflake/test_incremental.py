"""Incremental writes into a real fakesnow server from a lake the real simulator feeds through the
ingest assets: changed keys are applied in one transaction with the sync state, an unchanged lake
is skipped, a purge rewrites, a failed apply changes nothing, and the end state always equals a
fresh full refresh into an empty schema.

One scenario, not five tests: every step needs the state the previous one left, and each load
into the fakesnow server costs seconds."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.compute as pc
import pytest
from snowflake.connector.cursor import SnowflakeCursor

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.results import materialization
from imednet_assets.defs.sinks.changes import APPLY, REWRITE, SKIP
from imednet_assets.defs.sinks.snowflake import loader, sql
from imednet_assets.defs.sinks.snowflake.assets import TABLE_FAMILIES
from imednet_assets.defs.sinks.tabular import ENTITIES
from imednet_assets.simulator import SimulatorServer
from imednet_assets_tests.defs.ingest.conftest import imednet_resource
from imednet_assets_tests.defs.sinks.duckdb.conftest import (
    record,
    variable,
    write_lake,
    write_study,
)
from imednet_assets_tests.defs.sinks.snowflake.conftest import SnowSink

pytestmark = pytest.mark.usefixtures("imednet_env")

FORM_TABLES = dg.AssetKey(["snowflake", "form_tables"])
OTHER = "B"


def ingest(snow: SnowSink, study: str, mode: str = FULL) -> None:
    """Refresh the study's lake slices from the simulator (full or incremental)."""
    if study not in snow.instance.get_dynamic_partitions("study"):
        snow.instance.add_dynamic_partitions("study", [study])
    dg.materialize(ingest_assets, partition_key=study, instance=snow.instance,
                   tags=mode_tags(mode),
                   resources={"imednet": imednet_resource(),
                              "lake_io_manager": LakeIOManager(root=str(snow.lake))})


def ids(snow: SnowSink, entity: str, study: str) -> list[Any]:
    column = {"subjects": "subject_id", "visits": "visit_id", "records": "record_id"}[entity]
    lake = LakeSlice.read(snow.lake, entity, study, SCHEMAS[entity])
    return pc.unique(lake.columns([column]).column(column)).to_pylist()


def write_other_study(snow: SnowSink, like: str) -> None:
    """Study B in the lake, by hand, with the subject, visit and record ids of `like`: a DELETE
    by key that forgot the study would take B's rows too."""
    write_study(snow.lake, OTHER, ["ZZ"], [variable(1, "ZZ", "x", "NUMBER")],
                [record(r, "ZZ", {"x": str(r)}) for r in ids(snow, "records", like)])
    write_lake(snow.lake, "subjects", OTHER,
               [{"subject_id": s, "subject_key": f"B-{s}"} for s in ids(snow, "subjects", like)])
    write_lake(snow.lake, "visits", OTHER,
               [{"visit_id": v, "subject_key": "B-1"} for v in ids(snow, "visits", like)])


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """asset name -> its materialization metadata values."""
    out = {}
    for name in TABLE_FAMILIES:
        with contextlib.suppress(KeyError):  # not materialized by this run
            found = materialization(result, f"snowflake/{name}")
            out[name] = {k: v.value for k, v in found.metadata.items()}
    return out


def load_all(sink: SnowSink, study: str) -> dict[str, str]:
    """Every table family of the study from `sink`'s lake through the loader itself, as the
    assets call it, without a Dagster run around it (seconds fewer each); asset -> plan."""
    slices = {e: LakeSlice.read(sink.lake, e, study, SCHEMAS[e]) for e in ENTITIES}
    conn = sink._connect()
    try:
        loader.ensure_stage_and_manifest(conn.cursor(), sink.settings())
        actions = {}
        for name, (tables, _) in TABLE_FAMILIES.items():
            write = loader.SnowflakeWrite(f"snowflake/{name}", study, slices, tables)
            report = loader.load_study(conn, write, sink.settings(), run_id="direct",
                                       destination="test")
            assert report.plan is not None
            actions[name] = report.plan.action
        return actions
    finally:
        conn.close()


def assert_like_a_fresh_full_refresh(snow: SnowSink, study: str, tmp_path: Path) -> None:
    """The study's rows of every table equal what a full load of the same lake into an empty
    schema gives (sync-state and manifest tables aside; the other study's own form table holds
    nothing of this one)."""
    fresh = SnowSink(tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}", snow.server)
    fresh.lake = snow.lake
    try:
        assert set(load_all(fresh, study).values()) == {REWRITE}
        theirs = fresh.snapshot()
    finally:
        fresh.close()
    ours = snow.snapshot(study)
    assert {t: v for t, v in ours.items() if t in theirs or v[1]} == theirs


def manifest_run_ids(snow: SnowSink) -> set[str]:
    return {json.loads(x)["run_id"] for x in snow.manifest.read_text().splitlines()}


def test_incremental_writes_equal_a_fresh_full_refresh(
    sim: SimulatorServer, snow: SnowSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = sorted(sim.stats())[0]
    ingest(snow, study)
    write_other_study(snow, study)
    for key in (study, OTHER):
        assert set(load_all(snow, key).values()) == {REWRITE}
    other_rows = snow.snapshot(OTHER)
    other_state = [r for r in snow.sync_state() if r[1] == OTHER]

    # records modified, added and soft-deleted, a subject deleted upstream
    sim.advance(study_key=study, modify=2, add=1, delete=1, delete_subjects=1)
    ingest(snow, study, INCREMENTAL)

    # 1. a failure between the DELETE of the changed keys and the COPY commits nothing
    before, state = snow.snapshot(), snow.sync_state()
    seen: list[int] = []

    def fail(cursor: Any, load: loader.TableLoad) -> None:
        # inside the apply's transaction; a form table whose changed records are all new lost
        # no row, so fail at the first one whose DELETE took the old rows of changed records
        # (A's form tables hold only A's rows)
        cursor.execute(sql.count_slice_sql(load.table), (study,))
        if cursor.fetchone()[0] == len(before[load.table][1]):
            return
        cursor.execute(f'SELECT COUNT(*) FROM "{sql.CHANGED_KEYS_TABLE}"')
        seen.append(cursor.fetchone()[0])
        raise RuntimeError("injected failure between DELETE and COPY")

    with monkeypatch.context() as patch:
        patch.setattr(loader, "_before_copy", fail)
        failed = snow.run(study, raise_on_error=False, selection=[FORM_TABLES])
    assert not failed.success and seen == [4]  # the 4 changed records' keys
    text = failed.failure_data_for_node("snowflake_write").user_failure_data.description
    assert "injected failure between DELETE and COPY" in text
    assert "nothing of this load was committed" in text
    assert snow.snapshot() == before and snow.sync_state() == state
    assert snow.staged() == [] and failed.run_id not in manifest_run_ids(snow)

    # 2. the changed keys are applied: deleted and copied in again, the rest left alone. The
    # step's assets share one checked connection, and each write reads the catalog of tables
    # and columns once (no schema changed; its answer serves the schema sync and the asset
    # page), never a DESCRIBE per table: each is a round trip
    described: list[str] = []
    connections: set[int] = set()
    execute = SnowflakeCursor.execute

    def recording(cursor: SnowflakeCursor, command: str, *args: Any, **kwargs: Any) -> Any:
        connections.add(id(cursor.connection))
        if command.startswith("DESCRIBE"):
            described.append(command)
        if command == sql.catalog_sql():
            described.append("(catalog)")
        if command.startswith("SELECT CURRENT_DATABASE()"):
            described.append("(connection check)")
        return execute(cursor, command, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SnowflakeCursor, "execute", recording)
        meta = metadata(snow.run(study))
    assert len(connections) == 1
    assert sorted(described) == ["(catalog)"] * len(meta) + ["(connection check)"]
    form_columns = {t: snow.columns(t) for t in meta["form_tables"]["table_rows"]}
    assert len(form_columns) > 5
    assert [(c.name, c.type) for c in meta["form_tables"]["dagster/column_schema"].columns] == [
        (f"{t}.{name}", ctype) for t in sorted(form_columns) for name, ctype in form_columns[t]]
    assert {n: m["mode"] for n, m in meta.items() if n != "visits"} == {
        "subjects": APPLY, "dictionary": SKIP, "records_long": APPLY, "form_tables": APPLY}
    assert meta["visits"]["mode"] in (SKIP, APPLY)
    form = meta["form_tables"]
    assert (form["mode_reason"], form["keys_changed"]) == ("4 changed records", 4)
    # 3 records that were there are replaced, the added one is new
    assert (form["rows_deleted"], form["rows_inserted"]) == (3, 4)
    assert form["dagster/row_count"] == sim.stats()[study]["records"]
    assert meta["subjects"]["rows_deleted"] == meta["subjects"]["rows_inserted"] >= 1
    assert meta["dictionary"]["mode_reason"] == "already holds the lake's state"
    assert snow.staged() == []
    assert_like_a_fresh_full_refresh(snow, study, tmp_path)

    # 3. nothing changed since: every asset skips, no row moves, nothing is staged or loaded
    before, state, runs = snow.snapshot(), snow.sync_state(), manifest_run_ids(snow)
    meta = metadata(snow.run(study))
    assert {m["mode"] for m in meta.values()} == {SKIP}
    assert all((m["stage_paths"], m["batches"], m["rows_inserted"], m["rows_deleted"])
               == ([], 0, 0, 0) for m in meta.values())
    assert meta["form_tables"]["dagster/row_count"] == sim.stats()[study]["records"]
    assert snow.snapshot() == before and snow.sync_state() == state
    assert manifest_run_ids(snow) == runs

    # 4. a purge cannot be seen through the change log: the lake and the tables rewrite
    sim.advance(study_key=study, purge=1)
    ingest(snow, study, INCREMENTAL)
    meta = metadata(snow.run(study))
    assert meta["form_tables"]["mode"] == meta["records_long"]["mode"] == REWRITE
    assert meta["form_tables"]["mode_reason"] == (
        "the records change log does not reach back to the applied state")
    assert meta["subjects"]["mode"] == SKIP
    assert_like_a_fresh_full_refresh(snow, study, tmp_path)

    # 5. the other study (same ids) kept its rows and its sync state through all of it
    assert snow.snapshot(OTHER) == other_rows
    assert [r for r in snow.sync_state() if r[1] == OTHER] == other_state
