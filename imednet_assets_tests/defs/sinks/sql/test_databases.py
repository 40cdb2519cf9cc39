"""SQL sink assets into the real PostgreSQL on 127.0.0.1, run through Dagster over real lakes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.duckdb.naming import shorten
from imednet_assets.defs.sinks.sql import loader, writer
from imednet_assets.defs.sinks.sql.assets import sql_assets
from imednet_assets.defs.sinks.sql.resources import SqlDestination
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, variable, write_lake
from imednet_assets_tests.defs.sinks.duckdb.test_assets import BIG, HOSTILE, LONG_NAME, study_a
from imednet_assets_tests.defs.sinks.sql.conftest import SqlSink

ASSETS = ("subjects", "visits", "dictionary", "records_long", "form_tables")


def _slices(sink: SqlSink, study: str) -> dict[str, LakeSlice]:
    return {e: LakeSlice.read(sink.lake, e, study, SCHEMAS[e]) for e in ENTITIES}


def _step_error(result, step: str) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == step)
    return failure.step_failure_data.error.message


def test_every_table_holds_exactly_the_study_tables_rows(pg_sink: SqlSink) -> None:
    study_a(pg_sink)
    result = pg_sink.run("A")

    with StudyTables("A", _slices(pg_sink, "A"), max_identifier_length=63) as tables:
        specs = tables.specs()
        assert pg_sink.tables() == sorted(s.name for s in specs)
        for spec in specs:
            expected = tables.read(spec).read_all()
            # same columns in the same order, every value exactly (100 kB text, unicode, NULL
            # vs "", booleans, dates, timestamps, doubles)
            assert [c for c, _ in pg_sink.columns(spec.name)] == expected.column_names, spec.name
            rows = sorted((tuple(r.values()) for r in expected.to_pylist()), key=repr)
            assert pg_sink.dump(spec.name) == rows, spec.name

    # the 120-character variable got a 63-byte column; the dictionary says which
    long_col = shorten(LONG_NAME, 63)
    assert pg_sink.query(
        f'SELECT "column_name" FROM {pg_sink.ref("variables")} WHERE "variable_name" = :v',
        {"v": LONG_NAME}) == [(long_col,)]
    wide = pg_sink.query(
        f'SELECT "record_id", "sysbp", "sysbp__raw_2", "vsdt", "vstm", "smoker", '
        f'"odd_name_select", "{long_col}", "AGE", "age_2" FROM {pg_sink.ref("form_VS")} '
        'ORDER BY "record_id"')
    assert wide == [
        (1, 128.0, "128", dt.date(2024, 4, 9), dt.datetime(2024, 4, 9, 16, 40, 3), True, BIG,
         "long", "40", "41"),
        (2, None, "ND", None, None, False, None, None, None, None),
        (3, 37.2, "37.2", None, None, None, None, None, None, None),
    ]
    assert pg_sink.query(f'SELECT "select" FROM {pg_sink.ref("form_AE_Log")}') == [
        ("Bronchitis",)]
    assert pg_sink.query(
        f'SELECT "value" FROM {pg_sink.ref("records_long")} WHERE "variable_name" = :v',
        {"v": HOSTILE}) == [(BIG,)]

    meta = result.asset_materializations_for_node("sql__form_tables")[0].metadata
    assert meta["tables"].value == {"form_AE_Log": 1, "form_EMPTY": 0, "form_VS": 3}
    assert meta["dagster/row_count"].value == 4
    assert meta["rows_deleted"].value == 0
    assert meta["batches"].value == 2  # the empty form sends none
    assert meta["destination"].value == (
        f"postgresql+psycopg://***@127.0.0.1:5432/{pg_sink.url.rsplit('/', 1)[1]}")
    long_meta = result.asset_materializations_for_node("sql__records_long")[0].metadata
    assert long_meta["dagster/row_count"].value == 33
    assert long_meta["dagster/table_name"].value == f"{pg_sink.schema}.records_long"


def test_replay_change_and_two_studies(pg_sink: SqlSink, tmp_path: Path, pg_url) -> None:
    study_a(pg_sink, "A")
    study_a(pg_sink, "B")
    pg_sink.run("A")
    pg_sink.run("B")
    first = pg_sink.snapshot()
    result = pg_sink.run("A")
    assert pg_sink.snapshot() == first  # a replay without change changes nothing
    meta = result.asset_materializations_for_node("sql__records_long")[0].metadata
    assert meta["rows_deleted"].value == meta["dagster/row_count"].value == 33

    # B changes in the lake (a record and two forms go away, a value changes): replay B
    a_rows = {t: pg_sink.dump(t, "A") for t in pg_sink.tables()}
    write_lake(pg_sink.lake, "records", "B", [record(9, "VS", {"sysbp": "1"})])
    write_lake(pg_sink.lake, "forms", "B", [{"form_id": 1, "form_key": "VS"}])
    write_lake(pg_sink.lake, "variables", "B", [variable(1, "VS", "sysbp", "NUMBER")])
    pg_sink.run("B")
    assert {t: pg_sink.dump(t, "A") for t in pg_sink.tables()} == a_rows  # A untouched
    assert pg_sink.query(
        f'SELECT "study_key", "record_id", "sysbp" FROM {pg_sink.ref("form_VS")} '
        "WHERE \"study_key\" = 'B'") == [("B", 9, 1.0)]
    # nothing stale of B in the table of a form it no longer has
    assert pg_sink.dump("form_AE_Log", "B") == []

    # B's slice equals a clean load of the same lake into an empty schema
    clean = SqlSink(tmp_path, pg_url, pg_sink.schema + "_clean")
    try:
        clean.run("B")
        assert set(clean.tables()) <= set(pg_sink.tables())
        for table in clean.tables():
            ours, theirs = pg_sink.dicts(table, "B"), clean.dicts(table)
            # the shared table may have more columns (A's variables): NULL for B
            assert [{k: d[k] for k in theirs[0]} for d in ours] == theirs if theirs else not ours
            extra = {k for d in ours for k, v in d.items() if v is not None} - set(
                theirs[0] if theirs else ())
            assert not extra, table
    finally:
        with clean.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{clean.schema}" CASCADE'))
        clean.close()


def test_failure_midway_rolls_back_the_whole_study(
    pg_sink: SqlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_a(pg_sink)
    pg_sink.run("A")
    before = pg_sink.snapshot()
    done = pg_sink.materializations("form_tables", "A")

    # form_AE_Log is deleted and loaded, form_VS deleted, then the load fails
    def explode(conn: sa.Connection, table: str) -> None:
        if table == "form_VS":
            conn.execute(sa.text("SELECT 1 / 0"))

    monkeypatch.setattr(writer, "_before_load", explode)
    # and a new record for the changed lake, so a partial write would show
    write_lake(pg_sink.lake, "records", "A", [record(7, "AE Log!", {"select": "new"})])
    result = pg_sink.run("A", raise_on_error=False, assets=None)
    assert not result.success
    message = _step_error(result, "sql__form_tables")
    assert (f"SQL write of form_tables for study A (SQL database at postgresql+psycopg://***@"
            f"127.0.0.1:5432/{pg_sink.url.rsplit('/', 1)[1]}) failed: table form_VS, batch 0: "
            "DivisionByZero: division by zero") in message
    assert "Traceback" not in message
    after = pg_sink.snapshot()
    for table in ("form_AE_Log", "form_VS", "form_EMPTY"):
        assert after[table] == before[table], table
    assert pg_sink.materializations("form_tables", "A") == done  # not marked materialized


def test_a_value_the_database_refuses_rolls_back_and_names_table_and_batch(
    pg_sink: SqlSink,
) -> None:
    study_a(pg_sink)
    pg_sink.run("A")
    before = pg_sink.snapshot()
    done = pg_sink.materializations("records_long", "A")
    # PostgreSQL text cannot hold NUL; it comes in the 3rd batch of 2 rows
    rows = [record(i, "VS", {"sysbp": str(i)}) for i in range(1, 4)]
    rows.append(record(4, "VS", {"sysbp": "bad\x00value"}))
    write_lake(pg_sink.lake, "records", "A", rows)
    result = pg_sink.run("A", raise_on_error=False, batch_size=2)
    assert not result.success
    message = _step_error(result, "sql__records_long")
    assert "SQL write of records_long for study A (SQL database at postgresql+psycopg://***@" in (
        message)
    assert ") failed: table records_long, batch 8: " in message
    assert "0x00" in message
    assert pg_sink.snapshot()["records_long"] == before["records_long"]
    assert pg_sink.materializations("records_long", "A") == done


def test_wide_form_with_300_hostile_variables(pg_sink: SqlSink) -> None:
    names = [f"{i:03d} {'select' if i % 2 else 'ΔQ'} \"v\" $.{'x' * 100}" for i in range(300)]
    types = ["NUMBER", "TEXT", "DATE", "CHECKBOX"]
    variables = [variable(i + 1, "WIDE", n, types[i % 4]) for i, n in enumerate(names)]
    values = {"NUMBER": "1.5", "TEXT": "text 'quoted' \"double\"", "DATE": "2024-02-29",
              "CHECKBOX": "true"}
    data = {n: values[types[i % 4]] for i, n in enumerate(names)}
    from imednet_assets_tests.defs.sinks.duckdb.conftest import write_study
    write_study(pg_sink.lake, "W", ["WIDE"], variables, [record(1, "WIDE", data)])
    pg_sink.run("W")

    columns = pg_sink.columns("form_WIDE")
    # 11 record columns, 300 variables, 225 raw columns of the typed ones
    assert len(columns) == 11 + 300 + 225
    assert all(len(c.encode()) <= 63 for c, _ in columns)
    mapping = pg_sink.query(
        f'SELECT "variable_name", "column_name", "raw_column_name" FROM {pg_sink.ref("variables")}')
    assert len(mapping) == 300
    by_name = {v: (c, r) for v, c, r in mapping}
    row = dict(zip([c for c, _ in columns], pg_sink.dump("form_WIDE")[0], strict=True))
    expected = {"NUMBER": 1.5, "TEXT": values["TEXT"], "DATE": dt.date(2024, 2, 29),
                "CHECKBOX": True}
    for i, name in enumerate(names):
        column, raw = by_name[name]
        assert row[column] == expected[types[i % 4]], name
        if raw is not None:
            assert row[raw] == data[name]
    assert pg_sink.query(f'SELECT count(*) FROM {pg_sink.ref("records_long")}') == [(303,)]


def test_type_change_across_studies_widens_to_text_with_the_api_text(pg_sink: SqlSink) -> None:
    study_a(pg_sink, "A", sysbp_type="NUMBER")
    study_a(pg_sink, "B", sysbp_type="TEXT")
    pg_sink.run("A")
    assert dict(pg_sink.columns("form_VS"))["sysbp"] == "DOUBLE PRECISION"
    pg_sink.run("B")
    assert dict(pg_sink.columns("form_VS"))["sysbp"] == "TEXT"
    expected = [("A", 1, "128"), ("A", 2, "ND"), ("A", 3, "37.2"),
                ("B", 1, "128"), ("B", 2, "ND"), ("B", 3, "37.2")]
    query = f'SELECT "study_key", "record_id", "sysbp" FROM {pg_sink.ref("form_VS")}'
    assert sorted(pg_sink.query(query)) == expected
    pg_sink.run("A")  # a replay of the typed study keeps the API's text in the widened column
    assert sorted(pg_sink.query(query)) == expected


def test_copy_round_trips_null_empty_quotes_newlines_and_end_marker(pg_sink: SqlSink) -> None:
    values = [None, "", '"', "a,b", "line\nbreak\r\n", "\\.", "\\N", "NULL", "tab\there",
              "emoji 🧪", BIG]
    batch = pa.record_batch({"study_key": pa.array(["X"] * len(values)),
                             "v": pa.array(values, pa.string())})
    with pg_sink.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{pg_sink.schema}"'))
        conn.execute(sa.text(f'CREATE TABLE {pg_sink.ref("t")} ("study_key" TEXT, "v" TEXT)'))
        progress = loader.LoadProgress()
        reader = pa.RecordBatchReader.from_batches(batch.schema, [batch, batch.slice(0, 0)])
        loader.copy_batches(conn, pg_sink.schema, "t", reader, progress)
    assert (progress.batch, progress.rows) == (1, len(values))
    assert sorted(pg_sink.dump("t"), key=repr) == sorted(
        [("X", v) for v in values], key=repr)


def test_unreachable_server_and_refused_login_fail_before_any_data_moves(
    tmp_path: Path, pg_url
) -> None:
    database = pg_url.database
    failure = "dagster._core.definitions.events.Failure: "
    cases = [
        (f"postgresql+psycopg://root:hunter2secret@127.0.0.1:1/{database}",
         f"SQL database at postgresql+psycopg://***@127.0.0.1:1/{database}: cannot connect: "
         'OperationalError: connection failed: connection to server at "127.0.0.1", port 1 '
         "failed: Connection refused\n\tIs the server running on that host and accepting "
         "TCP/IP connections?"),
        (f"postgresql://no_such_role:hunter2secret@127.0.0.1:5432/{database}",
         f"SQL database at postgresql+psycopg://***@127.0.0.1:5432/{database}: cannot connect: "
         'OperationalError: connection failed: connection to server at "127.0.0.1", port 5432 '
         'failed: FATAL:  role "no_such_role" does not exist'),
    ]
    for url, expected in cases:
        sink = SqlSink(tmp_path, url, None)
        study_a(sink)
        result = sink.run("A", raise_on_error=False, connect_timeout_s=2)
        assert not result.success
        for step in ASSETS:
            assert _step_error(result, f"sql__{step}") == f"{failure}{expected}\n"
            assert sink.materializations(step, "A") == 0
        logs = "\n".join(str(e) for e in result.all_events)
        assert "hunter2secret" not in logs
        sink.close()
    # the refused login created nothing in the database
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()


def test_a_connection_killed_midway_is_retried_from_a_clean_slate(
    pg_sink: SqlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_a(pg_sink)
    pg_sink.run("A")
    clean = pg_sink.snapshot()
    kills = []

    def kill_once(conn: sa.Connection, table: str) -> None:
        # the server ends this session after form_AE_Log was replaced: a real lost connection
        if table == "form_VS" and not kills:
            kills.append(table)
            conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))

    monkeypatch.setattr(writer, "_before_load", kill_once)
    result = pg_sink.run("A", assets=[a for a in sql_assets if a.key.path[-1] == "form_tables"])
    assert kills == ["form_VS"]
    assert result.success
    assert pg_sink.snapshot() == clean  # nothing lost, nothing twice
    logs = [e.user_message for e in pg_sink.instance.all_logs(result.run_id)]
    retried = [m for m in logs if "retry 1 after" in m]
    assert len(retried) == 1 and retried[0].endswith(
        "retry 1 after table form_VS, batch 0: AdminShutdown: terminating connection due to "
        "administrator command")

    # without retries the same kill fails the step and leaves the previous rows
    kills.clear()
    result = pg_sink.run("A", raise_on_error=False, max_retries=0,
                         assets=[a for a in sql_assets if a.key.path[-1] == "form_tables"])
    assert not result.success
    message = _step_error(result, "sql__form_tables")
    assert "failed after 1 attempt(s): TransientSqlError: table form_VS, batch 0: " in message
    assert pg_sink.snapshot() == clean


def test_downstream_assets_read_the_study_rows_back(pg_sink: SqlSink) -> None:
    import dagster as dg

    from imednet_assets.defs.partitions import study_partitions

    seen = {}

    @dg.asset(partitions_def=study_partitions,
              ins={"tables": dg.AssetIn(key=["sql", "form_tables"])})
    def report(tables: dict[str, pa.Table]) -> None:
        seen.update({name: table.num_rows for name, table in tables.items()})

    @dg.asset(partitions_def=study_partitions,
              ins={"dictionary": dg.AssetIn(["sql", "dictionary"])})
    def dictionary_report(dictionary: dict[str, pa.Table]) -> None:
        seen.update({name: table.num_rows for name, table in dictionary.items()})

    study_a(pg_sink, "A")
    study_a(pg_sink, "B")
    pg_sink.run("B")
    pg_sink.run("A", assets=[*sql_assets, report, dictionary_report])
    assert seen == {"form_AE_Log": 1, "form_EMPTY": 0, "form_VS": 3, "forms": 3, "variables": 13}


def test_the_destination_never_shows_its_password() -> None:
    destination = SqlDestination(url="postgresql://me:hunter2secret@db.example:5432/trials")
    assert "hunter2secret" not in repr(destination)
    assert destination.describe() == (
        "SQL database at postgresql+psycopg://***@db.example:5432/trials")
