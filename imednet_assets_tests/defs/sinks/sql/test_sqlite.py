"""The generic SQLAlchemy path (executemany per batch) on another dialect: a SQLite file."""

from __future__ import annotations

import datetime as dt

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, write_lake
from imednet_assets_tests.defs.sinks.duckdb.test_assets import BIG, HOSTILE, LONG_NAME, study_a
from imednet_assets_tests.defs.sinks.sql.conftest import SqlSink


def test_sqlite_tables_equal_the_study_tables_and_replay_is_identical(
    sqlite_sink: SqlSink,
) -> None:
    study_a(sqlite_sink, "A")
    study_a(sqlite_sink, "B")
    sqlite_sink.run("A")
    sqlite_sink.run("B", batch_size=2)  # several executemany batches per table

    slices = {e: LakeSlice.read(sqlite_sink.lake, e, "A", SCHEMAS[e]) for e in ENTITIES}
    with StudyTables("A", slices) as tables:
        for spec in tables.specs():
            expected = tables.read(spec).read_all().to_pylist()
            got = sqlite_sink.dicts(spec.name, "A")
            assert [_plain(r) for r in got] == sorted(
                (_plain(r) for r in expected), key=lambda d: repr(sorted(d.items()))
            ), spec.name
    # no identifier limit in SQLite: the 120-character column keeps its name
    assert LONG_NAME in dict(sqlite_sink.columns("form_VS"))
    assert sqlite_sink.query(
        'SELECT "value" FROM "records_long" WHERE "variable_name" = :v AND "study_key" = \'A\'',
        {"v": HOSTILE}) == [(BIG,)]

    first = sqlite_sink.snapshot()
    sqlite_sink.run("A")
    assert sqlite_sink.snapshot() == first

    write_lake(sqlite_sink.lake, "records", "B", [record(9, "VS", {"sysbp": "1"})])
    sqlite_sink.run("B")
    assert sqlite_sink.dump("form_AE_Log", "B") == []
    assert sqlite_sink.query(
        'SELECT "record_id", "sysbp" FROM "form_VS" WHERE "study_key" = \'B\'') == [(9, 1.0)]
    for table in sqlite_sink.tables():
        assert sqlite_sink.dump(table, "A") == [r for r in first[table][1] if r[0] == "A"]


def test_sqlite_refuses_a_type_change_across_studies_clearly(sqlite_sink: SqlSink) -> None:
    study_a(sqlite_sink, "A", sysbp_type="NUMBER")
    study_a(sqlite_sink, "B", sysbp_type="TEXT")
    # B also has a new form: its table is created before form_VS fails, and must not stay
    write_lake(sqlite_sink.lake, "forms", "B", [{"form_id": 1, "form_key": "VS"},
                                                {"form_id": 2, "form_key": "NEW"}])
    sqlite_sink.run("A")
    before = sqlite_sink.snapshot()
    result = sqlite_sink.run("B", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events
                   if e.is_step_failure and e.step_key == "sql_write")
    path = sqlite_sink.url.removeprefix("sqlite:///")
    assert failure.step_failure_data.error.message == (
        "dagster._core.definitions.events.Failure: SQL write of form_tables for study B "
        f"(SQL database at sqlite:///{path}) failed: table form_VS: column 'sysbp' of table "
        "'form_VS' holds different types in different studies; SQLite cannot change a column's "
        "type, use a database that can (e.g. PostgreSQL)\n")
    after = sqlite_sink.snapshot()
    for table in ("form_VS", "form_AE_Log", "form_EMPTY"):
        assert after[table] == before[table]
    assert "form_NEW" not in after  # the DDL was rolled back with the rest


def _plain(row: dict) -> dict:
    """A row as SQLite stores it through SQLAlchemy (raw SQL reads skip the type processors):
    booleans as 0/1, dates and timestamps as ISO text."""

    def stored(v: object) -> object:
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, dt.datetime):
            return v.strftime("%Y-%m-%d %H:%M:%S.%f")
        if isinstance(v, dt.date):
            return v.isoformat()
        return v

    return {k: stored(v) for k, v in row.items()}
