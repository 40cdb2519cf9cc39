"""`sql/form_tables` `every_record_once` on the real PostgreSQL (and, in short, MariaDB): passes
after a materialization with exact counts, fails with exact counts and ids after tampering,
ignores other studies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from imednet_assets.defs.sinks.sql.assets import sql_assets
from imednet_assets.defs.sinks.sql.checks import sql_every_record_once
from imednet_assets_tests.defs.sinks.check_runs import meta, run_check, shown
from imednet_assets_tests.defs.sinks.duckdb.test_assets import study_a
from imednet_assets_tests.defs.sinks.sql.conftest import SqlSink

PASSWORD = "pw-never-shown-7f3a"  # trust auth: PostgreSQL never asks for it, nothing may show it
OTHER = "O'Brien; DROP TABLE \"form_VS\" $.x"  # another study, with a hostile key


@pytest.fixture
def sink(tmp_path: Path, pg_url: sa.URL) -> Iterator[SqlSink]:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    sink = SqlSink(tmp_path, pg_url.set(password=PASSWORD), schema)
    try:
        yield sink
    finally:
        with sink.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        sink.close()


def check(sink: SqlSink, study: str, *, materialize: bool = False):
    return run_check(sink.instance, study, sql_every_record_once, sink.resources(), sql_assets,
                     materialize=materialize)


def test_passes_after_materialization_with_exact_metadata(sink: SqlSink) -> None:
    study_a(sink)  # 4 records, one deleted (kept by the SQL sink), hostile names, 100 kB value
    study_a(sink, OTHER)
    sink.run(OTHER)  # the same record ids in another study: neither counted nor duplicates

    evaluation = check(sink, "A", materialize=True)

    assert evaluation.passed
    assert evaluation.description == "study A: 4 lake records, each once in the form tables"
    found = meta(evaluation)
    assert found == {
        "study": "A", "table": "form_*", "destination": found["destination"],
        "lake_rows": 4, "sql_rows": 4, "duplicate_record_ids": 0, "duplicates_sample": [],
        "missing_sample": [], "unexpected_sample": [],
        "rows_by_table": {"form_AE_Log": 1, "form_VS": 3},
    }
    assert found["destination"].startswith("SQL database at postgresql+psycopg://")
    assert PASSWORD not in shown(evaluation)


def test_fails_with_exact_counts_after_a_row_is_deleted(sink: SqlSink) -> None:
    study_a(sink)
    study_a(sink, OTHER)
    sink.run("A")
    sink.run(OTHER)
    with sink.engine.begin() as conn:
        conn.execute(sa.text(f'DELETE FROM {sink.ref("form_VS")} WHERE "study_key" = :s '
                             'AND "record_id" = 2'), {"s": "A"})

    evaluation = check(sink, "A")

    assert not evaluation.passed
    assert evaluation.description == "study A: form tables hold 3 rows, the lake 4 records"
    found = meta(evaluation)
    assert (found["lake_rows"], found["sql_rows"]) == (4, 3)
    assert (found["missing_sample"], found["unexpected_sample"]) == ([2], [])
    assert found["rows_by_table"] == {"form_AE_Log": 1, "form_VS": 2}
    assert PASSWORD not in shown(evaluation)
    # the other study is untouched, and its own check says so
    assert check(sink, OTHER).passed


def test_fails_on_a_duplicated_record_even_when_counts_match(sink: SqlSink) -> None:
    study_a(sink)
    sink.run("A")
    vs, ae = sink.ref("form_VS"), sink.ref("form_AE_Log")
    with sink.engine.begin() as conn:  # record 4 also lands in form_VS, record 2 is lost
        conn.execute(sa.text(f'DELETE FROM {vs} WHERE "record_id" = 2'))
        conn.execute(sa.text(f'INSERT INTO {vs} ("study_key", "record_id") '
                             f'SELECT "study_key", "record_id" FROM {ae}'))

    evaluation = check(sink, "A")

    assert not evaluation.passed
    assert evaluation.description == "study A: 1 record_id(s) occur more than once"
    found = meta(evaluation)
    assert (found["lake_rows"], found["sql_rows"], found["duplicate_record_ids"]) == (4, 4, 1)
    assert found["duplicates_sample"] == [{"record_id": 4, "rows": 2}]


def test_other_studies_rows_do_not_count(sink: SqlSink) -> None:
    study_a(sink)
    study_a(sink, OTHER)
    sink.run("A")
    sink.run(OTHER)
    with sink.engine.begin() as conn:  # the other study loses all its rows
        conn.execute(sa.text(f'DELETE FROM {sink.ref("form_VS")} WHERE "study_key" = :s'),
                     {"s": OTHER})
        conn.execute(sa.text(f'DELETE FROM {sink.ref("form_AE_Log")} WHERE "study_key" = :s'),
                     {"s": OTHER})

    assert check(sink, "A").passed
    evaluation = check(sink, OTHER)
    assert evaluation.description == (
        f"study {OTHER}: form tables hold 0 rows, the lake 4 records")
    assert meta(evaluation)["missing_sample"] == [1, 2, 3, 4]


def test_the_check_on_mariadb(mariadb_sink: SqlSink) -> None:
    sink = mariadb_sink
    study_a(sink)
    study_a(sink, OTHER)
    sink.run(OTHER)
    evaluation = check(sink, "A", materialize=True)
    assert evaluation.passed
    assert meta(evaluation)["rows_by_table"] == {"form_AE_Log": 1, "form_VS": 3}
    assert meta(evaluation)["destination"] == f"SQL database at {sink.address()}"

    vs, ae = sink.ref("form_VS"), sink.ref("form_AE_Log")
    with sink.engine.begin() as conn:  # record 4 also lands in form_VS, record 2 is lost
        conn.execute(sa.text(f"DELETE FROM {vs} WHERE `record_id` = 2 AND `study_key` = 'A'"))
        conn.execute(sa.text(f"INSERT INTO {vs} (`study_key`, `record_id`) "
                             f"SELECT `study_key`, `record_id` FROM {ae} WHERE `study_key` = 'A'"))
    evaluation = check(sink, "A")
    assert not evaluation.passed
    found = meta(evaluation)
    assert (found["lake_rows"], found["sql_rows"], found["duplicate_record_ids"]) == (4, 4, 1)
    assert found["duplicates_sample"] == [{"record_id": 4, "rows": 2}]
    assert check(sink, OTHER).passed
