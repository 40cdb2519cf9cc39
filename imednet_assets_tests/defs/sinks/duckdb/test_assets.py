"""DuckDB sink assets over real lake folders and real DuckDB files, run through Dagster."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import duckdb
import pytest

from imednet_assets.defs.results import materialization
from imednet_assets.defs.sinks.duckdb import io_manager
from imednet_assets_tests.defs.sinks.duckdb.conftest import (
    Sink,
    record,
    variable,
    write_lake,
    write_study,
)

HOSTILE = 'odd "name" \'$.select'
LONG_NAME = "q" * 120
BIG = "é" * 50_000 + "x" * 2_000  # > 100 kB of UTF-8


def study_a(sink: Sink, study: str = "A", sysbp_type: str = "NUMBER") -> None:
    variables = [
        variable(1, "VS", "sysbp", sysbp_type),
        variable(2, "VS", "vsdt", "date"),  # lower case: types compare case-insensitively
        variable(3, "VS", "vstm", "DateTime"),
        variable(4, "VS", "Pain Level", "RADIO"),
        variable(5, "VS", "smoker", "CHECKBOX"),
        variable(6, "VS", "record_id", "TEXT"),  # clashes with a meta column
        variable(7, "VS", HOSTILE, "MEMO"),
        variable(8, "VS", "Größe", "NUMBER"),
        variable(9, "VS", LONG_NAME, "TEXT"),
        variable(10, "VS", "sysbp__raw", "TEXT"),  # clashes with sysbp's raw column
        variable(11, "VS", "AGE", "TEXT"),
        variable(12, "VS", "age", "SOMETHING_NEW"),  # unknown type -> text; AGE/age clash
        variable(20, "AE Log!", "select", "TEXT"),
    ]
    records = [
        record(1, "VS", {"sysbp": "128", "vsdt": "2024-04-09", "vstm": "2024-04-09 16:40:03",
                         "Pain Level": "3", "smoker": "true", "record_id": "r-one",
                         HOSTILE: BIG, "Größe": "1.75", LONG_NAME: "long", "sysbp__raw": "t",
                         "AGE": "40", "age": "41", "mystery": "not in dictionary"}),
        record(2, "VS", {"sysbp": "ND", "vsdt": "not a date", "vstm": "", "smoker": "FALSE",
                         "Pain Level": None}),
        record(3, "VS", {"sysbp": "37.2", "smoker": "maybe"}, deleted=True),
        record(4, "AE Log!", {"select": "Bronchitis"}, parent_record_id=1),
    ]
    write_study(sink.lake, study, ["VS", "AE Log!", "EMPTY"], variables, records)


def test_wide_and_long_tables_hold_every_value_exactly(sink: Sink) -> None:
    study_a(sink)
    result = sink.run("A")

    assert sink.tables() == sorted([
        "studies", "sites", "intervals", "forms", "variables", "subjects", "visits",
        "records_long", "record_revisions", "queries", "form_AE_Log", "form_EMPTY", "form_VS",
    ])
    # forms.table_name and the variables mapping are stored for users
    assert sink.query("SELECT form_key, table_name FROM forms ORDER BY 1") == [
        ("AE Log!", "form_AE_Log"), ("EMPTY", "form_EMPTY"), ("VS", "form_VS")]
    assert sink.query(
        "SELECT variable_name, column_name, raw_column_name, column_type FROM variables "
        "WHERE form_key = 'VS' ORDER BY variable_id") == [
        ("sysbp", "sysbp", "sysbp__raw_2", "DOUBLE"),
        ("vsdt", "vsdt", "vsdt__raw", "DATE"),
        ("vstm", "vstm", "vstm__raw", "TIMESTAMP"),
        ("Pain Level", "Pain_Level", None, "VARCHAR"),
        ("smoker", "smoker", "smoker__raw", "BOOLEAN"),
        ("record_id", "record_id_2", None, "VARCHAR"),
        (HOSTILE, "odd_name_select", None, "VARCHAR"),
        ("Größe", "Gr_e", "Gr_e__raw", "DOUBLE"),
        (LONG_NAME, LONG_NAME, None, "VARCHAR"),
        ("sysbp__raw", "sysbp__raw", None, "VARCHAR"),
        ("AGE", "AGE", None, "VARCHAR"),
        ("age", "age_2", None, "VARCHAR"),
    ]
    cols = [c[0] for c in sink.query('DESCRIBE "form_VS"')]
    assert cols[:11] == ["study_key", "record_id", "subject_key", "visit_id", "interval_id",
                         "site_id", "parent_record_id", "record_status", "deleted",
                         "date_created", "date_modified"]
    wide = sink.query(
        'SELECT record_id, deleted, sysbp, sysbp__raw_2, vsdt, vsdt__raw, vstm, vstm__raw, '
        '"Pain_Level", smoker, smoker__raw, record_id_2, odd_name_select, "Gr_e", '
        f'"{LONG_NAME}", sysbp__raw, "AGE", age_2 FROM "form_VS" ORDER BY record_id')
    assert wide == [
        (1, False, 128.0, "128", dt.date(2024, 4, 9), "2024-04-09",
         dt.datetime(2024, 4, 9, 16, 40, 3), "2024-04-09 16:40:03", "3", True, "true", "r-one",
         BIG, 1.75, "long", "t", "40", "41"),
        (2, False, None, "ND", None, "not a date", None, "", None, False, "FALSE", None, None,
         None, None, None, None, None),
        (3, True, 37.2, "37.2", None, None, None, None, None, None, "maybe", None, None, None,
         None, None, None, None),
    ]
    assert sink.query('SELECT record_id, parent_record_id, "select" FROM "form_AE_Log"') == [
        (4, 1, "Bronchitis")]
    assert sink.query('SELECT count(*) FROM "form_EMPTY"') == [(0,)]
    assert [c[0] for c in sink.query('DESCRIBE "form_EMPTY"')][-1] == "date_modified"

    # long table: one row per recordData entry, housekeeping keys kept without label/type
    # keys given + 3 housekeeping keys, per record
    expected = (13 + 3) + (5 + 3) + (2 + 3) + (1 + 3)
    assert sink.query("SELECT count(*) FROM records_long") == [(expected,)]
    assert sink.query(
        "SELECT variable_name, value, label, variable_type, is_variable FROM records_long "
        "WHERE record_id = 1 AND variable_name IN (?, 'unvnum', 'mystery', 'sysbp') ORDER BY 1",
        [HOSTILE]) == [
        ("mystery", "not in dictionary", None, None, False),
        (HOSTILE, BIG, f"label of {HOSTILE}", "MEMO", True),
        ("sysbp", "128", "label of sysbp", "NUMBER", True),
        ("unvnum", "", None, None, False),
    ]
    assert sink.query("SELECT value FROM records_long WHERE record_id = 2 AND "
                      "variable_name = 'Pain Level'") == [(None,)]

    form_tables = materialization(result, "duckdb/form_tables").metadata
    assert form_tables["form_row_counts"].value == {"form_AE_Log": 1, "form_EMPTY": 0,
                                                    "form_VS": 3}
    assert form_tables["dagster/row_count"].value == 4
    assert form_tables["dagster/table_name"].value == "main.form_*"
    # the asset page lists every form table's columns as stored, labelled from the dictionary
    columns = {c.name: c for c in form_tables["dagster/column_schema"].value.columns}
    assert (columns["form_VS.sysbp"].type, columns["form_VS.sysbp"].description) == (
        sink.query("SELECT data_type FROM duckdb_columns() WHERE table_name = 'form_VS' "
                   "AND column_name = 'sysbp'")[0][0], "label of sysbp")
    # (a variable of the study is itself named `sysbp__raw`: the raw twin gets another name)
    (raw,) = sink.query("SELECT raw_column_name FROM variables WHERE variable_name = 'sysbp'")[0]
    assert raw != "sysbp__raw"
    assert columns[f"form_VS.{raw}"].description == "label of sysbp (as entered, text)"
    assert columns["form_VS.sysbp__raw"].description == "label of sysbp__raw"
    assert columns["form_VS.record_id"].description is None
    assert len(columns) == sink.query(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name LIKE 'form\\_%' ESCAPE '\\'")[0][0]
    long_meta = materialization(result, "duckdb/records_long").metadata
    assert long_meta["dagster/row_count"].value == 33
    assert long_meta["dagster/table_name"].value == "main.records_long"
    assert [c.name for c in long_meta["dagster/column_schema"].value.columns] == [
        c[0] for c in sink.query("DESCRIBE records_long")]
    assert long_meta["preview"].value.startswith("| study_key | record_id | form_key |")


def test_records_long_row_count_is_the_number_of_record_data_entries(sink: Sink) -> None:
    study_a(sink)
    sink.run("A")
    conn_rows = sink.query(
        "SELECT sum(cardinality(record_data)) FROM read_parquet(?, hive_partitioning = false)",
        [str(sink.lake / "records" / "**" / "*.parquet")])
    assert sink.query("SELECT count(*) FROM records_long") == conn_rows == [(33,)]


def test_replay_is_identical_and_leaves_other_studies_untouched(sink: Sink) -> None:
    study_a(sink, "A")
    study_a(sink, "B")
    sink.run("A")
    sink.run("B")
    first = sink.snapshot()
    sink.run("A")
    assert sink.snapshot() == first

    # B changes in the lake (a record and a form go away): replaying B must not touch A's rows
    a_rows = {t: sink.dump(t, "A") for t in sink.tables()}
    write_lake(sink.lake, "records", "B", [record(9, "VS", {"sysbp": "1"})])
    write_lake(sink.lake, "forms", "B", [{"form_id": 1, "form_key": "VS"}])
    write_lake(sink.lake, "variables", "B", [variable(1, "VS", "sysbp", "NUMBER")])
    sink.run("B")
    assert {t: sink.dump(t, "A") for t in sink.tables()} == a_rows
    assert sink.query('SELECT study_key, record_id, sysbp FROM "form_VS" WHERE study_key = '
                      "'B'") == [("B", 9, 1.0)]
    # nothing stale of B in the tables of forms it no longer has
    assert sink.query('SELECT count(*) FROM "form_AE_Log" WHERE study_key = \'B\'') == [(0,)]
    assert sink.query("SELECT count(*) FROM records_long WHERE study_key = 'B'") == [(4,)]


def test_shuffled_lake_columns_land_by_name(sink: Sink) -> None:
    study_a(sink)
    sink.run("A")
    before = sink.snapshot()
    # same data, columns in reverse order in every file of two entities
    schema_names = {
        "sites": ["date_modified", "date_created", "site_enrollment_status", "site_name",
                  "site_id", "study_key"],
    }
    write_lake(sink.lake, "sites", "A", [{"site_id": 101, "site_name": "Rochester"}],
               columns=schema_names["sites"])
    from imednet_assets.client.arrow import SCHEMAS
    rows = [record(1, "VS", {"sysbp": "5"}), record(4, "AE Log!", {"select": "x"})]
    write_lake(sink.lake, "records", "A", rows, columns=list(reversed(SCHEMAS["records"].names)))
    sink.run("A")
    after = sink.snapshot()
    assert after["sites"] == before["sites"]
    assert sink.query('SELECT study_key, record_id, site_id, sysbp, sysbp__raw_2 FROM "form_VS"'
                      ) == [("A", 1, 101, 5.0, "5")]


def test_variable_type_change_across_studies_widens_to_text(sink: Sink) -> None:
    study_a(sink, "A", sysbp_type="NUMBER")
    study_a(sink, "B", sysbp_type="TEXT")
    sink.run("A")
    assert dict((c[0], c[1]) for c in sink.query('DESCRIBE "form_VS"'))["sysbp"] == "DOUBLE"
    sink.run("B")
    assert dict((c[0], c[1]) for c in sink.query('DESCRIBE "form_VS"'))["sysbp"] == "VARCHAR"
    # A's values were restored from their raw text, not rendered from the double ("128.0")
    expected = [("A", 1, "128"), ("A", 2, "ND"), ("A", 3, "37.2"),
                ("B", 1, "128"), ("B", 2, "ND"), ("B", 3, "37.2")]
    assert sink.query('SELECT study_key, record_id, sysbp FROM "form_VS" ORDER BY ALL') == expected
    sink.run("A")  # a replay of the typed study keeps text in the widened column
    assert sink.query('SELECT study_key, record_id, sysbp FROM "form_VS" ORDER BY ALL') == expected


def test_failure_between_delete_and_insert_keeps_rows_and_releases_the_file(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_a(sink)
    sink.run("A")
    before = sink.snapshot()

    seen = []

    def explode(conn, table: str) -> None:
        seen.append(conn)  # kept alive here, so only an explicit close() can release the file
        if table == "form_VS":
            conn.execute("SELECT error('injected failure')")

    monkeypatch.setattr(io_manager, "_before_insert", explode)
    result = sink.run("A", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure
                   and e.step_key == "duckdb_write")
    message = failure.step_failure_data.error.message
    assert (f"DuckDB write of form_tables for study A failed (database {sink.db}, table "
            "form_VS): Invalid Input Error: injected failure") in message
    assert sink.snapshot() == before  # earlier forms' deletes were rolled back too
    with pytest.raises(duckdb.ConnectionException, match="closed"):
        seen[-1].execute("SELECT 1")

    # another process can take the write lock at once: the failed run closed its connection
    script = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
              "c.execute(\"DELETE FROM sites WHERE study_key = 'A'\"); c.close()")
    subprocess.run([sys.executable, "-c", script, sink.db], check=True, timeout=60)
    assert sink.query("SELECT count(*) FROM sites") == [(0,)]


def test_write_study_rolls_back_and_names_study_database_and_table(tmp_path) -> None:
    db = str(tmp_path / "direct.duckdb")
    conn = duckdb.connect(db)
    try:
        good = io_manager.StudyWrite("sites", "CARDIO-01", (io_manager.TableLoad(
            "sites", lambda _t: "SELECT 'CARDIO-01' AS study_key, 1 AS site_id"),))
        assert io_manager.write_study(conn, good, db).counts == {"sites": 1}
        bad = io_manager.StudyWrite("sites", "CARDIO-01", (io_manager.TableLoad(
            "sites", lambda _t: "SELECT 'CARDIO-01' AS study_key, error('boom') AS site_id"),))
        with pytest.raises(io_manager.DuckDBSinkError) as err:
            io_manager.write_study(conn, bad, db)
        assert str(err.value) == (f"DuckDB write of sites for study CARDIO-01 failed (database "
                                  f"{db}, table sites): Invalid Input Error: boom")
        # rolled back: the row is there and the connection is not stuck in an aborted transaction
        assert conn.execute("SELECT * FROM sites").fetchall() == [("CARDIO-01", 1)]
        conn.execute("BEGIN TRANSACTION")
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_a_step_writes_every_table_over_one_connection(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the file and checkpointing it on close cost more than a small write: the step's
    outputs share one connection, and it is closed when the step ends (another process can
    take the write lock at once)."""
    import dagster_duckdb.resource

    study_a(sink)
    opened = []
    connect = duckdb.connect

    def counting(*args, **kwargs):
        opened.append(kwargs.get("database"))
        return connect(*args, **kwargs)

    monkeypatch.setattr(dagster_duckdb.resource.duckdb, "connect", counting)
    result = sink.run("A")
    writes = [e for e in result.all_events if e.is_step_materialization
              and e.step_key == "duckdb_write"]
    assert len(writes) == 11
    assert opened == [sink.db]
    script = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
              "c.execute(\"DELETE FROM sites WHERE study_key = 'A'\"); c.close()")
    subprocess.run([sys.executable, "-c", script, sink.db], check=True, timeout=60)
