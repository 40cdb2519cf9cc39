"""SQL builders and naming rules as text, without a database."""

from __future__ import annotations

import pyarrow as pa
import pytest

from imednet_assets.defs.sinks.duckdb import sql
from imednet_assets.defs.sinks.duckdb.naming import (
    VariableColumn,
    duckdb_type,
    normalise,
    plan_form_tables,
)

LONG = "x" * 130


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain", '"plain"'),
        ("with space", '"with space"'),
        ("price$", '"price$"'),
        ("a.b", '"a.b"'),
        ('say "hi"', '"say ""hi"""'),
        ("it's", '"it\'s"'),
        ("select", '"select"'),
        ("Größe ✓", '"Größe ✓"'),
        (LONG, f'"{LONG}"'),
    ],
)
def test_quote_ident_quotes_every_hostile_name(name: str, quoted: str) -> None:
    assert sql.quote_ident(name) == quoted


def test_quote_literal_doubles_single_quotes() -> None:
    assert sql.quote_literal("it's \"x\"") == "'it''s \"x\"'"


def test_replay_statements() -> None:
    assert sql.delete_slice_sql("a b") == 'DELETE FROM "main"."a b" WHERE "study_key" = ?'
    assert sql.insert_by_name_sql("t", "SELECT 1") == 'INSERT INTO "main"."t" BY NAME SELECT 1'
    assert sql.create_table_sql('we"ird', [("select", "VARCHAR"), ("x.y", "DOUBLE")]) == (
        'CREATE TABLE "main"."we""ird" ("select" VARCHAR, "x.y" DOUBLE)'
    )
    assert sql.add_column_sql("t", "$c", "DATE") == 'ALTER TABLE "main"."t" ADD COLUMN "$c" DATE'
    assert sql.widen_column_sql("t", "c") == (
        'ALTER TABLE "main"."t" ALTER COLUMN "c" SET DATA TYPE VARCHAR'
    )
    assert sql.comment_column_sql("t", "c__raw", sql.raw_comment('c"')) == (
        'COMMENT ON COLUMN "main"."t"."c__raw" IS \'raw text of column "c"""\''
    )


def test_read_parquet_lists_files_and_turns_hive_off() -> None:
    assert sql.read_parquet_sql(["/l/a.parquet", "/l/it's.parquet"]) == (
        "read_parquet(['/l/a.parquet', '/l/it''s.parquet'], union_by_name = true, "
        "hive_partitioning = false)"
    )


def test_list_tables_escapes_like_wildcards() -> None:
    assert sql.list_tables_sql("form_") == (
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
        "AND table_name LIKE 'form\\_%' ESCAPE '\\' ORDER BY table_name"
    )


def test_wide_select_types_values_and_keeps_raw_text() -> None:
    cols = [
        VariableColumn("F", "it's n", "NUMBER", None, "it_s_n", "DOUBLE", "it_s_n__raw"),
        VariableColumn("F", "cb", "CHECKBOX", None, "cb", "BOOLEAN", "cb__raw"),
        VariableColumn("F", "t", "TEXT", None, "t", "VARCHAR", None),
        VariableColumn("F", "w", "DATE", None, "w", "DATE", "w__raw"),
    ]
    text = sql.wide_select_sql("src", "F'1", cols, text_columns=["W"])
    assert text == (
        'SELECT "study_key", "record_id", "subject_key", "visit_id", "interval_id", "site_id", '
        '"parent_record_id", "record_status", "deleted", "date_created", "date_modified", '
        "TRY_CAST(\"record_data\"['it''s n'] AS DOUBLE) AS \"it_s_n\", "
        "\"record_data\"['it''s n'] AS \"it_s_n__raw\", "
        "CASE lower(trim(\"record_data\"['cb'])) WHEN 'true' THEN true "
        "WHEN 'false' THEN false END AS \"cb\", \"record_data\"['cb'] AS \"cb__raw\", "
        "\"record_data\"['t'] AS \"t\", "
        "\"record_data\"['w'] AS \"w\", \"record_data\"['w'] AS \"w__raw\" "
        "FROM src WHERE \"form_key\" = 'F''1'"
    )


@pytest.mark.parametrize(
    ("vtype", "expected"),
    [("NUMBER", "DOUBLE"), ("number", "DOUBLE"), ("Date", "DATE"), ("DATETIME", "TIMESTAMP"),
     ("checkbox", "BOOLEAN"), ("RADIO", "VARCHAR"), ("MEMO", "VARCHAR"), ("upload", "VARCHAR"),
     (None, "VARCHAR")],
)
def test_variable_types_map_case_insensitively(vtype: str | None, expected: str) -> None:
    assert duckdb_type(vtype) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sysbp", "sysbp"), ("AE_term2", "AE_term2"), ("Pain Level", "Pain_Level"),
     ("$x.y", "x_y"), ("1st", "v_1st"), ("ünï", "n"), ("✓", "v"), ('a"b\'c', "a_b_c")],
)
def test_normalise(name: str, expected: str) -> None:
    assert normalise(name) == expected


def _variables(rows: list[tuple[str, str, str, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"form_key": f, "variable_name": n, "variable_type": t, "label": None, "variable_id": i,
          "deleted": False, "disabled": False} for f, n, t, i in rows])


def test_plan_is_deterministic_and_resolves_clashes() -> None:
    rows = [("F.1", "x y", "TEXT", 1), ("F.1", "x_y", "NUMBER", 2), ("F.1", "study_key", "TEXT", 3),
            ("F.1", "x_y__raw", "TEXT", 4), ("F-1", "a", "TEXT", 5)]
    plan = plan_form_tables(["F.1", "F-1"], _variables(rows))
    assert plan == plan_form_tables(["F-1", "F.1"], _variables(list(reversed(rows))))
    assert [(p.form_key, p.table_name) for p in plan] == [("F-1", "form_F_1"),
                                                          ("F.1", "form_F_1_2")]
    assert [(c.variable_name, c.column_name, c.raw_column_name) for c in plan[1].columns] == [
        ("study_key", "study_key_2", None),
        ("x y", "x_y", None),
        ("x_y", "x_y_2", "x_y_2__raw"),
        ("x_y__raw", "x_y__raw", None),
    ]


def test_forms_seen_only_in_records_never_rename_dictionary_forms() -> None:
    plan = plan_form_tables(["b.b"], _variables([]), extra_form_keys=["b_b", "a"])
    assert [(p.form_key, p.table_name) for p in plan] == [
        ("b.b", "form_b_b"), ("a", "form_a"), ("b_b", "form_b_b_2")]


def test_duplicate_dictionary_rows_prefer_the_live_variable() -> None:
    table = pa.Table.from_pylist([
        {"form_key": "F", "variable_name": "v", "variable_type": "NUMBER", "label": "old",
         "variable_id": 9, "deleted": True, "disabled": False},
        {"form_key": "F", "variable_name": "v", "variable_type": "TEXT", "label": "live",
         "variable_id": 3, "deleted": False, "disabled": False},
    ])
    (form,) = plan_form_tables(["F"], table)
    assert [(c.label, c.column_type) for c in form.columns] == [("live", "VARCHAR")]
