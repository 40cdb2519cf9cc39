"""Incremental writes of the SQL destination on the real PostgreSQL and MariaDB: the sync state
stored beside the data and the lake's change logs give skip, apply (changed keys deleted and
re-inserted in one transaction) or rewrite, and the tables always end as a full load would leave
them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.ingest.assets import ENTITIES as LAKE_ENTITIES
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.slice import LakeSlice, study_dir
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.results import materialization
from imednet_assets.defs.sinks.common import DestinationError
from imednet_assets.defs.sinks.sql import writer
from imednet_assets.defs.sinks.sql.assets import DEPENDS_ON, study_write
from imednet_assets.defs.sinks.sql.io_manager import run_write
from imednet_assets.defs.sinks.sql.resources import SqlDestination
from imednet_assets.defs.sinks.sql.writer import WriteResult
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, write_lake
from imednet_assets_tests.defs.sinks.duckdb.test_assets import BIG, HOSTILE, study_a
from imednet_assets_tests.defs.sinks.sql.conftest import SqlSink, empty_twin

#: A second study whose key is hostile too (quotes, a backtick, SQL, unicode).
OTHER = "O'Brien `x` \"$.select\" é"


def write(sink: SqlSink, study: str, lake: Path | None = None,
          assets: tuple[str, ...] = tuple(DEPENDS_ON)) -> dict[str, WriteResult]:
    """The SQL assets' writes for `study`, as their IO manager does them (without Dagster)."""
    root = lake or sink.lake
    slices = {e: LakeSlice.read(root, e, study, SCHEMAS[e]) for e in ENTITIES}
    destination = SqlDestination(url=sink.url, db_schema=sink.schema, retry_backoff_s=0.0)
    return {name: run_write(destination, study_write(name, study, slices)) for name in assets}


def modes(results: dict[str, WriteResult]) -> dict[str, str]:
    return {name: r.plan.action for name, r in results.items() if r.plan}


def study_rows(sink: SqlSink, study: str) -> dict[str, list[tuple]]:
    return {t: sink.dump(t, study) for t in sink.tables()}


def expected_rows(sink: SqlSink, study: str) -> dict[str, list[tuple]]:
    """What a full load of the study's lake gives, table by table (booleans as MariaDB keeps
    them), from the same `StudyTables` the sink loads."""
    limit = 63 if sink.dialect == "postgresql" else 64
    slices = {e: LakeSlice.read(sink.lake, e, study, SCHEMAS[e]) for e in ENTITIES}
    out = {}
    with StudyTables(study, slices, max_identifier_length=limit) as tables:
        for spec in tables.specs():
            rows = (tuple(int(v) if isinstance(v, bool) and sink.dialect == "mysql" else v
                          for v in r.values()) for r in tables.read(spec).read_all().to_pylist())
            out[spec.name] = sorted(rows, key=repr)
    return out


def with_change_log(lake: Path, study: str) -> None:
    """Give the study's hand-written slices the manifest a first full ingest writes."""
    for entity, (key, _) in LAKE_ENTITIES.items():
        folder = study_dir(lake, entity, study)
        SliceManifest.first(entity, study, key, 0, None).write(folder)


def lake_records(lake: Path, study: str) -> list[dict]:
    """The study's records as they are in the lake, by record_id."""
    table = LakeSlice.read(lake, "records", study, SCHEMAS["records"]).dataset().to_table()
    return sorted(table.drop_columns(["study_key"]).to_pylist(), key=lambda r: r["record_id"])


def change_records(lake: Path, study: str, rows: list[dict], keys: list[int]) -> None:
    """Replace the study's records as an incremental ingest does: new rows, a log entry for
    `keys`."""
    folder = study_dir(lake, "records", study)
    manifest = SliceManifest.read(folder)
    assert manifest is not None
    write_lake(lake, "records", study, rows)
    manifest.after_merge(len(rows), None, keys).write(folder)


def test_changed_keys_are_applied_skipped_or_rewritten(
    sink: SqlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    for study in ("A", OTHER):
        study_a(sink, study)
        with_change_log(sink.lake, study)
    first = write(sink, "A")
    write(sink, OTHER)
    assert set(modes(first).values()) == {"rewrite"}
    assert first["subjects"].plan.reason == "the destination holds no sync state for this study"
    assert len(sink.sync_state()) == 2 * (1 + 1 + 2 + 3 + 3)  # per study: asset x its slices
    before = sink.snapshot()

    # nothing changed: every asset skips, no row moves, the study's counts are still reported
    again = write(sink, "A")
    assert set(modes(again).values()) == {"skip"}
    assert again["records_long"].rows == {"records_long": 33}
    assert (again["form_tables"].deleted, again["form_tables"].inserted) == (0, 0)
    assert sink.snapshot() == before

    # record 2 changes, record 5 is new (a 100 kB value); only these keys are applied
    rows = lake_records(sink.lake, "A")
    rows[1] = record(2, "VS", {"sysbp": "131", HOSTILE: "it's `quoted`"})
    rows.append(record(5, "AE Log!", {"select": BIG}))
    change_records(sink.lake, "A", rows, [2, 5])
    other = study_rows(sink, OTHER)
    applied = write(sink, "A")
    assert modes(applied) == {"subjects": "skip", "visits": "skip", "dictionary": "skip",
                              "records_long": "apply", "form_tables": "apply"}
    assert applied["form_tables"].plan.keys == {2, 5}
    assert (applied["form_tables"].deleted, applied["form_tables"].inserted) == (1, 2)
    assert applied["form_tables"].rows == {"form_AE_Log": 2, "form_EMPTY": 0, "form_VS": 3}
    assert study_rows(sink, "A") == expected_rows(sink, "A")
    assert study_rows(sink, OTHER) == other

    # a failure while applying leaves the previous rows and sync state; the retry applies
    state, done = sink.sync_state(), sink.snapshot()
    rows[0] = record(1, "VS", {"sysbp": "99", "smoker": "false"})
    change_records(sink.lake, "A", rows, [1])

    def explode(conn: sa.Connection, table: str) -> None:
        if table == "form_VS":
            # inside the transaction the changed record's row is gone already
            gone = conn.execute(sa.text(
                f"SELECT count(*) FROM {sink.ref('form_VS')} WHERE {sink.q('record_id')} = 1 "
                f"AND {sink.q('study_key')} = 'A'")).scalar_one()
            seen.append(gone)
            conn.execute(sa.text("SELECT * FROM no_such_table"))

    seen: list[int] = []

    monkeypatch.setattr(writer, "_before_load", explode)
    with pytest.raises(DestinationError, match="failed: table form_VS, batch 0: "):
        write(sink, "A", assets=("form_tables",))
    assert seen == [0]
    assert (sink.sync_state(), sink.snapshot()) == (state, done)
    monkeypatch.undo()
    assert modes(write(sink, "A")) == {"subjects": "skip", "visits": "skip", "dictionary": "skip",
                                       "records_long": "apply", "form_tables": "apply"}
    assert study_rows(sink, "A") == expected_rows(sink, "A")

    # a table of the asset missing in the destination: rewritten whatever the state says
    with sink.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {sink.ref('form_EMPTY')}"))
    rewritten = write(sink, "A")["form_tables"]
    assert (rewritten.plan.action, rewritten.plan.reason) == (
        "rewrite", "the destination lacks table(s) form_EMPTY")
    assert study_rows(sink, "A") == expected_rows(sink, "A")
    assert study_rows(sink, OTHER) == other

    # a change log keyed by another column than the tables' key cannot be applied by key
    folder = study_dir(sink.lake, "records", "A")
    manifest = SliceManifest.read(folder)
    assert manifest is not None
    replace(manifest, key_column="record_oid").after_merge(5, None, [4]).write(folder)
    odd = write(sink, "A", assets=("form_tables",))["form_tables"]
    assert (odd.plan.action, odd.plan.reason) == (
        "rewrite", "the records change log is keyed by record_oid, the tables by record_id")


# -- against the simulator, through the ingest assets -----------------------------------------


def ingest(lake: Path, instance: dg.DagsterInstance, imednet: ImednetResource, study: str,
           mode: str = FULL) -> None:
    dg.materialize(ingest_assets, partition_key=study, instance=instance, tags=mode_tags(mode),
                   resources={"imednet": imednet, "lake_io_manager": LakeIOManager(root=str(lake))})


def meta(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    values = materialization(result, f"sql/{asset}").metadata
    return {k: v.value for k, v in values.items()}


def test_incremental_lake_refreshes_end_like_a_fresh_full_refresh(
    pg_sink: SqlSink, mariadb_sink: SqlSink, tmp_path: Path
) -> None:
    sinks = (pg_sink, mariadb_sink)
    config = SimulatorConfig(seed=11, studies=2, subjects=5, hostile=True)
    with SimulatorServer(config) as sim:
        imednet = ImednetResource(base_url=sim.base_url, api_key="k", security_key="s")
        one, other = sorted(sim.stats())
        lake = tmp_path / "lake"
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("study", [one, other])
        for study in (one, other):
            ingest(lake, instance, imednet, study)
        for sink in sinks:
            sink.lake = lake
            for study in (one, other):
                assert set(modes(write(sink, study)).values()) == {"rewrite"}, sink.dialect
        theirs = {s.dialect: study_rows(s, other) for s in sinks}
        # hostile names and 100 kB values made it in (both studies are hostile)
        for sink in sinks:
            values = sink.query(f"SELECT {sink.q('value')} FROM {sink.ref('records_long')}")
            assert max(len(v or "") for (v,) in values) >= 100_000, sink.dialect

        # modified, added, soft-deleted records and a deleted subject; incremental lake refresh
        changed = sim.advance(study_key=one, modify=2, add=1, delete=1, delete_subjects=1)
        touched = set(changed["modified"] + changed["added"] + changed["deleted"])
        ingest(lake, instance, imednet, one, INCREMENTAL)
        # through Dagster on PostgreSQL (the metadata), as the IO manager does it on MariaDB
        result = pg_sink.run(one)
        got = {a: meta(result, a) for a in DEPENDS_ON}
        assert {a: got[a]["mode"] for a in got} == {
            "subjects": "apply", "visits": "skip", "dictionary": "skip",
            "records_long": "apply", "form_tables": "apply"}
        assert got["form_tables"]["mode_reason"] == f"{len(touched)} changed records"
        assert got["form_tables"]["keys_changed"] == len(touched)
        # each changed record is one row of one form table; the added ones were not there
        assert (got["form_tables"]["rows_deleted"], got["form_tables"]["rows_inserted"]) == (
            len(touched) - len(changed["added"]), len(touched))
        assert got["dictionary"]["rows_inserted"] == got["dictionary"]["rows_deleted"] == 0
        assert got["dictionary"]["dagster/row_count"] > 0  # a skip still reports the counts
        results = write(mariadb_sink, one)
        assert modes(results) == {a: got[a]["mode"] for a in got}
        assert (results["form_tables"].deleted, results["form_tables"].inserted) == (
            len(touched) - len(changed["added"]), len(touched))
        fresh_lake = tmp_path / "fresh"
        ingest(fresh_lake, instance, imednet, one)  # a fresh full refresh of the lake
        for sink in sinks:
            like_a_fresh_full_refresh(sink, tmp_path, fresh_lake, one)
            assert study_rows(sink, other) == theirs[sink.dialect], sink.dialect

        # nothing changed since: every asset skips and no row moves
        for sink in sinks:
            before = (sink.snapshot(), sink.sync_state())
            assert set(modes(write(sink, one)).values()) == {"skip"}, sink.dialect
            assert (sink.snapshot(), sink.sync_state()) == before, sink.dialect

        # a purge: the lake falls back to a full refresh of the records, the SQL side rewrites
        sim.advance(study_key=one, purge=1)
        ingest(lake, instance, imednet, one, INCREMENTAL)
        fresh_lake = tmp_path / "fresh-2"
        ingest(fresh_lake, instance, imednet, one)
        for sink in sinks:
            results = write(sink, one)
            assert modes(results)["form_tables"] == modes(results)["records_long"] == "rewrite"
            assert modes(results)["dictionary"] == "skip", sink.dialect
            like_a_fresh_full_refresh(sink, tmp_path, fresh_lake, one)
            assert study_rows(sink, other) == theirs[sink.dialect], sink.dialect


def like_a_fresh_full_refresh(sink: SqlSink, tmp_path: Path, fresh_lake: Path,
                              study: str) -> None:
    """Every table of `study` equals, whole (columns with their types, rows), what a fresh full
    refresh of the lake loaded into an empty database gives."""
    with empty_twin(sink, tmp_path) as fresh:
        write(fresh, study, fresh_lake)
        ours, theirs = sink.snapshot(), fresh.snapshot()
        assert sorted(ours) == sorted(theirs), sink.dialect
        for table, (columns, rows) in theirs.items():
            # (the other study has the same dictionary: its rows add no columns)
            assert ours[table][0] == columns, (sink.dialect, table)
            assert [r for r in ours[table][1] if r[0] == study] == rows, (sink.dialect, table)
