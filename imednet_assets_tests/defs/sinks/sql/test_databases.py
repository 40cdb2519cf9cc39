"""SQL sink assets into the real PostgreSQL and the real MariaDB on 127.0.0.1, run through Dagster
over real lakes. Tests taking the `sink` fixture run on both; `pg_sink` ones are PostgreSQL's own
(COPY, a NUL byte it refuses)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.results import materialization
from imednet_assets.defs.sinks.duckdb.naming import shorten
from imednet_assets.defs.sinks.sql import ddl, loader, writer
from imednet_assets.defs.sinks.sql.assets import sql_assets
from imednet_assets.defs.sinks.sql.resources import SqlDestination
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, variable, write_lake
from imednet_assets_tests.defs.sinks.duckdb.test_assets import BIG, HOSTILE, LONG_NAME, study_a
from imednet_assets_tests.defs.sinks.sql.conftest import SqlSink, empty_twin

ASSETS = ("subjects", "visits", "dictionary", "records_long", "form_tables")


def _slices(sink: SqlSink, study: str) -> dict[str, LakeSlice]:
    return {e: LakeSlice.read(sink.lake, e, study, SCHEMAS[e]) for e in ENTITIES}


def _step_error(result, step: str) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == step)
    return failure.step_failure_data.error.message


def _limit(sink: SqlSink) -> int:
    """The identifier limit the sink must respect (PostgreSQL 63 bytes, MariaDB 64 characters)."""
    return 63 if sink.dialect == "postgresql" else 64


def _stored(sink: SqlSink, row: tuple) -> tuple:
    """A row as the database gives it back: MariaDB's BOOLEAN is TINYINT(1), so 1/0."""
    if sink.dialect != "mysql":
        return row
    return tuple(int(v) if isinstance(v, bool) else v for v in row)


def _cols(sink: SqlSink, *names: str) -> str:
    return ", ".join(sink.q(n) for n in names)


def test_every_table_holds_exactly_the_study_tables_rows(sink: SqlSink) -> None:
    study_a(sink)
    result = sink.run("A")
    limit = _limit(sink)

    with StudyTables("A", _slices(sink, "A"), max_identifier_length=limit) as tables:
        specs = tables.specs()
        assert sink.tables() == sorted(s.name for s in specs)
        for spec in specs:
            expected = tables.read(spec).read_all()
            # same columns in the same order, every value exactly (100 kB text, unicode, NULL
            # vs "", booleans, dates, timestamps, doubles)
            assert [c for c, _ in sink.columns(spec.name)] == expected.column_names, spec.name
            rows = sorted((_stored(sink, tuple(r.values())) for r in expected.to_pylist()),
                          key=repr)
            assert sink.dump(spec.name) == rows, spec.name

    # the 120-character variable got a column within the limit; the dictionary says which
    long_col = shorten(LONG_NAME, limit)
    assert len(long_col) == limit
    assert sink.query(
        f'SELECT {sink.q("column_name")} FROM {sink.ref("variables")} '
        f'WHERE {sink.q("variable_name")} = :v', {"v": LONG_NAME}) == [(long_col,)]
    wide = sink.query(
        f'SELECT {_cols(sink, "record_id", "sysbp", "sysbp__raw_2", "vsdt", "vstm", "smoker")}, '
        f'{_cols(sink, "odd_name_select", long_col, "AGE", "age_2")} FROM {sink.ref("form_VS")} '
        f'ORDER BY {sink.q("record_id")}')
    assert wide == [
        (1, 128.0, "128", dt.date(2024, 4, 9), dt.datetime(2024, 4, 9, 16, 40, 3), True, BIG,
         "long", "40", "41"),
        (2, None, "ND", None, None, False, None, None, None, None),
        (3, 37.2, "37.2", None, None, None, None, None, None, None),
    ]
    assert sink.query(f'SELECT {sink.q("select")} FROM {sink.ref("form_AE_Log")}') == [
        ("Bronchitis",)]
    assert sink.query(
        f'SELECT {sink.q("value")} FROM {sink.ref("records_long")} '
        f'WHERE {sink.q("variable_name")} = :v', {"v": HOSTILE}) == [(BIG,)]

    meta = materialization(result, "sql/form_tables").metadata
    assert meta["tables"].value == {"form_AE_Log": 1, "form_EMPTY": 0, "form_VS": 3}
    assert meta["dagster/row_count"].value == 4
    assert (meta["rows_deleted"].value, meta["rows_inserted"].value) == (0, 4)
    assert meta["batches"].value == 2  # the empty form sends none
    # a lake without change logs (written by hand here) is always rewritten
    assert (meta["mode"].value, meta["mode_reason"].value) == (
        "rewrite", "no change log in the lake for forms, records, variables")
    assert meta["destination"].value == sink.address()
    assert meta["dagster/table_name"].value == f"{sink.schema}.form_*"
    columns = {c.name: c for c in meta["dagster/column_schema"].value.columns}
    assert columns["form_VS.sysbp"].description == "label of sysbp"
    assert "label of sysbp (as entered, text)" in {c.description for c in columns.values()}
    long_meta = materialization(result, "sql/records_long").metadata
    assert long_meta["dagster/row_count"].value == 33
    assert long_meta["dagster/table_name"].value == f"{sink.schema}.records_long"
    # the sync state records what each asset was built from, "-" for a slice without a log
    assert sink.sync_state("dictionary") == [("dictionary", "A", "forms", "-"),
                                             ("dictionary", "A", "variables", "-")]


def test_replay_change_and_two_studies(sink: SqlSink, tmp_path: Path) -> None:
    study_a(sink, "A")
    study_a(sink, "B")
    sink.run("A")
    sink.run("B")
    first = sink.snapshot()
    result = sink.run("A")
    assert sink.snapshot() == first  # a replay without change changes nothing
    meta = materialization(result, "sql/records_long").metadata
    assert meta["rows_deleted"].value == meta["dagster/row_count"].value == 33

    # B changes in the lake (a record and two forms go away, a value changes): replay B
    a_rows = {t: sink.dump(t, "A") for t in sink.tables()}
    write_lake(sink.lake, "records", "B", [record(9, "VS", {"sysbp": "1"})])
    write_lake(sink.lake, "forms", "B", [{"form_id": 1, "form_key": "VS"}])
    write_lake(sink.lake, "variables", "B", [variable(1, "VS", "sysbp", "NUMBER")])
    sink.run("B")
    assert {t: sink.dump(t, "A") for t in sink.tables()} == a_rows  # A untouched
    assert sink.query(
        f'SELECT {_cols(sink, "study_key", "record_id", "sysbp")} FROM {sink.ref("form_VS")} '
        f"WHERE {sink.q('study_key')} = 'B'") == [("B", 9, 1.0)]
    # nothing stale of B in the table of a form it no longer has
    assert sink.dump("form_AE_Log", "B") == []

    # B's slice equals a clean load of the same lake into an empty schema
    with empty_twin(sink, tmp_path) as clean:
        clean.run("B")
        assert set(clean.tables()) <= set(sink.tables())
        for table in clean.tables():
            ours, theirs = sink.dicts(table, "B"), clean.dicts(table)
            # the shared table may have more columns (A's variables): NULL for B
            assert [{k: d[k] for k in theirs[0]} for d in ours] == theirs if theirs else not ours
            extra = {k for d in ours for k, v in d.items() if v is not None} - set(
                theirs[0] if theirs else ())
            assert not extra, table


#: A statement failing for good (not worth a retry), and how the failure reads, per dialect.
FAILING = {
    "postgresql": ("SELECT 1 / 0", "DivisionByZero: division by zero"),
    "mysql": ("SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'",
              "OperationalError: (1644, 'boom')"),
}


def test_failure_midway_rolls_back_the_whole_study(
    sink: SqlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_a(sink)
    sink.run("A")
    before = sink.snapshot()
    state = sink.sync_state()
    done = sink.materializations("form_tables", "A")
    statement, error = FAILING[sink.dialect]

    # form_AE_Log is deleted and loaded, form_VS deleted, then the load fails
    def explode(conn: sa.Connection, table: str) -> None:
        if table == "form_VS":
            conn.execute(sa.text(statement))

    monkeypatch.setattr(writer, "_before_load", explode)
    # and a new record for the changed lake, so a partial write would show
    write_lake(sink.lake, "records", "A", [record(7, "AE Log!", {"select": "new"})])
    result = sink.run("A", raise_on_error=False, assets=None)
    assert not result.success
    message = _step_error(result, "sql_write")
    assert (f"SQL write of form_tables for study A (SQL database at {sink.address()}) failed: "
            f"table form_VS, batch 0: {error}") in message
    assert "Traceback" not in message
    after = sink.snapshot()
    for table in ("form_AE_Log", "form_VS", "form_EMPTY"):
        assert after[table] == before[table], table
    assert sink.sync_state() == state  # the previous slice's state with it
    assert sink.materializations("form_tables", "A") == done  # not marked materialized


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
    message = _step_error(result, "sql_write")
    assert "SQL write of records_long for study A (SQL database at postgresql+psycopg://***@" in (
        message)
    assert ") failed: table records_long, batch 8: " in message
    assert "0x00" in message
    assert pg_sink.snapshot()["records_long"] == before["records_long"]
    assert pg_sink.materializations("records_long", "A") == done


def test_wide_form_with_300_hostile_variables(sink: SqlSink) -> None:
    names = [f"{i:03d} {'select' if i % 2 else 'ΔQ'} \"v\" `$.{'x' * 100}" for i in range(300)]
    types = ["NUMBER", "TEXT", "DATE", "CHECKBOX"]
    variables = [variable(i + 1, "WIDE", n, types[i % 4]) for i, n in enumerate(names)]
    values = {"NUMBER": "1.5", "TEXT": "text 'quoted' \"double\"", "DATE": "2024-02-29",
              "CHECKBOX": "true"}
    data = {n: values[types[i % 4]] for i, n in enumerate(names)}
    from imednet_assets_tests.defs.sinks.duckdb.conftest import write_study
    write_study(sink.lake, "W", ["WIDE"], variables, [record(1, "WIDE", data)])
    sink.run("W")

    columns = sink.columns("form_WIDE")
    # 11 record columns, 300 variables, 225 raw columns of the typed ones
    assert len(columns) == 11 + 300 + 225
    assert all(len(c.encode()) <= _limit(sink) for c, _ in columns)
    mapping = sink.query(
        f'SELECT {_cols(sink, "variable_name", "column_name", "raw_column_name")} '
        f'FROM {sink.ref("variables")}')
    assert len(mapping) == 300
    by_name = {v: (c, r) for v, c, r in mapping}
    row = dict(zip([c for c, _ in columns], sink.dump("form_WIDE")[0], strict=True))
    expected = {"NUMBER": 1.5, "TEXT": values["TEXT"], "DATE": dt.date(2024, 2, 29),
                "CHECKBOX": True}
    for i, name in enumerate(names):
        column, raw = by_name[name]
        assert row[column] == expected[types[i % 4]], name
        if raw is not None:
            assert row[raw] == data[name]
    assert sink.query(f'SELECT count(*) FROM {sink.ref("records_long")}') == [(303,)]


def test_type_change_across_studies_widens_to_text_with_the_api_text(sink: SqlSink) -> None:
    double, text = {"postgresql": ("DOUBLE PRECISION", "TEXT"),
                    "mysql": ("DOUBLE", "LONGTEXT")}[sink.dialect]
    study_a(sink, "A", sysbp_type="NUMBER")
    study_a(sink, "B", sysbp_type="TEXT")
    sink.run("A")
    assert dict(sink.columns("form_VS"))["sysbp"] == double
    sink.run("B")
    assert dict(sink.columns("form_VS"))["sysbp"] == text
    expected = [("A", 1, "128"), ("A", 2, "ND"), ("A", 3, "37.2"),
                ("B", 1, "128"), ("B", 2, "ND"), ("B", 3, "37.2")]
    query = f'SELECT {_cols(sink, "study_key", "record_id", "sysbp")} FROM {sink.ref("form_VS")}'
    assert sorted(sink.query(query)) == expected
    sink.run("A")  # a replay of the typed study keeps the API's text in the widened column
    assert sorted(sink.query(query)) == expected


def test_bulk_load_round_trips_null_empty_quotes_newlines_and_end_marker(sink: SqlSink) -> None:
    """COPY on PostgreSQL, executemany on MariaDB: every odd value comes back as it went in."""
    values = [None, "", '"', "a,b", "line\nbreak\r\n", "\\.", "\\N", "NULL", "tab\there",
              "emoji 🧪", "back`tick\\'quote", "x\x00y", BIG]
    if sink.dialect == "postgresql":
        values.remove("x\x00y")  # PostgreSQL text cannot hold NUL (refused: see below)
    keys = ["X" if i % 2 else "x " for i in range(len(values))]
    batch = pa.record_batch({"study_key": pa.array(keys), "v": pa.array(values, pa.string())})
    columns = [("study_key", ddl.sql_type(pa.string())), ("v", ddl.sql_type(pa.string()))]
    with sink.engine.begin() as conn:
        if sink.dialect == "postgresql":
            conn.execute(sa.text(f'CREATE SCHEMA "{sink.schema}"'))
        conn.execute(sa.text(ddl.create_table_sql(conn.dialect, sink.schema, "t", columns)))
        progress = loader.LoadProgress()
        reader = pa.RecordBatchReader.from_batches(batch.schema, [batch, batch.slice(0, 0)])
        writer.bulk_load(conn, sink.schema, "t", reader, progress)
    assert (progress.batch, progress.rows) == (1, len(values))
    assert sink.dump("t") == sorted(zip(keys, values, strict=True), key=repr)
    # study keys compare exactly: "x " is neither "X" nor "x" (MariaDB's default collation
    # would say both are)
    assert sink.query(f"SELECT count(*) FROM {sink.ref('t')} WHERE {sink.q('study_key')} = 'x'"
                      ) == [(0,)]


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
            assert _step_error(result, "sql_write") == f"{failure}{expected}\n"
            assert sink.materializations(step, "A") == 0
        logs = "\n".join(str(e) for e in result.all_events)
        assert "hunter2secret" not in logs
        sink.close()
    # the refused login created nothing in the database
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    engine.dispose()


def test_unreachable_mariadb_and_refused_login_fail_before_any_data_moves(
    tmp_path: Path,
) -> None:
    failure = "dagster._core.definitions.events.Failure: "
    cases = [
        ("mysql+pymysql://root:hunter2secret@127.0.0.1:1/test",
         "SQL database at mysql+pymysql://***@127.0.0.1:1/test: cannot connect: "
         "OperationalError: (2003, \"Can't connect to MySQL server on '127.0.0.1' "),
        ("mysql+pymysql://no_such_user:hunter2secret@127.0.0.1:3306/test",
         "SQL database at mysql+pymysql://***@127.0.0.1:3306/test: cannot connect: "
         "OperationalError: (1045, \"Access denied for user 'no_such_user'@"),
    ]
    for url, expected in cases:
        sink = SqlSink(tmp_path, url, None)
        study_a(sink)
        result = sink.run("A", raise_on_error=False, connect_timeout_s=2)
        assert not result.success
        for step in ASSETS:
            assert _step_error(result, "sql_write").startswith(f"{failure}{expected}")
            assert sink.materializations(step, "A") == 0
        logs = "\n".join(str(e) for e in result.all_events)
        assert "hunter2secret" not in logs
        sink.close()


#: How a server ends the writer's own session, and what the retry says, per dialect.
KILL = {
    "postgresql": ("SELECT pg_terminate_backend(pg_backend_pid())",
                   "AdminShutdown: terminating connection due to administrator command"),
    "mysql": ("KILL CONNECTION_ID()", "OperationalError: (1927, 'Connection was killed')"),
}


def test_a_connection_killed_midway_is_retried_from_a_clean_slate(
    sink: SqlSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_a(sink)
    sink.run("A")
    clean = sink.snapshot()
    kills = []
    statement, said = KILL[sink.dialect]

    def kill_once(conn: sa.Connection, table: str) -> None:
        # the server ends this session after form_AE_Log was replaced: a real lost connection
        if table == "form_VS" and not kills:
            kills.append(table)
            conn.execute(sa.text(statement))

    monkeypatch.setattr(writer, "_before_load", kill_once)
    # (hand-written lakes have no change log: every write is a rewrite, never a skip)
    result = sink.run("A", selection=["sql/form_tables"])
    assert kills == ["form_VS"]
    assert result.success
    assert sink.snapshot() == clean  # nothing lost, nothing twice
    logs = [e.user_message for e in sink.instance.all_logs(result.run_id)]
    retried = [m for m in logs if "retry 1 after" in m]
    assert len(retried) == 1 and retried[0].endswith(
        f"retry 1 after table form_VS, batch 0: {said}")

    # without retries the same kill fails the step and leaves the previous rows
    kills.clear()
    result = sink.run("A", raise_on_error=False, max_retries=0, selection=["sql/form_tables"])
    assert not result.success
    message = _step_error(result, "sql_write")
    assert "failed after 1 attempt(s): TransientSqlError: table form_VS, batch 0: " in message
    assert sink.snapshot() == clean


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
