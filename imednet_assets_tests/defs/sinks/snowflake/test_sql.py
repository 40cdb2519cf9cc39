"""The Snowflake sink's SQL text and COPY result check, without a server."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.snowflake import sql
from imednet_assets.defs.sinks.snowflake.loader import (
    SnowflakeWrite,
    attempt_path,
    check_copy,
    stage_path,
)
from imednet_assets.defs.sinks.snowflake.staging import StagedFile
from imednet_assets.defs.sinks.tabular import ENTITIES

COPY_COLUMNS = [("file",), ("status",), ("rows_parsed",), ("rows_loaded",), ("error_limit",),
                ("errors_seen",), ("first_error",)]


def test_identifiers_are_quoted_upper_case_and_literals_escaped() -> None:
    assert sql.quote_ident(sql.name('odd "q" $.select')) == '"ODD ""Q"" $.SELECT"'
    assert sql.quote_literal("it's a \\ path") == "'it''s a \\\\ path'"
    assert sql.delete_slice_sql("form_VS".upper()) == 'DELETE FROM "FORM_VS" WHERE "STUDY_KEY" = %s'
    assert sql.create_table_sql("T", [("A", "VARCHAR"), ('B"', "FLOAT")]) == (
        'CREATE TABLE IF NOT EXISTS "T" ("A" VARCHAR, "B""" FLOAT)')
    assert sql.add_column_sql("T", "SELECT", "DATE") == 'ALTER TABLE "T" ADD COLUMN "SELECT" DATE'


def test_arrow_types_map_to_snowflake_types() -> None:
    assert [sql.snowflake_type(t) for t in (
        pa.string(), pa.bool_(), pa.int32(), pa.float64(), pa.date32(), pa.timestamp("ms"),
        pa.timestamp("us", "UTC"), pa.decimal128(10, 2), pa.null())] == [
        "VARCHAR", "BOOLEAN", "NUMBER(38,0)", "FLOAT", "DATE", "TIMESTAMP_NTZ(3)",
        "TIMESTAMP_TZ(6)", "NUMBER(10,2)", "VARCHAR"]
    assert sql.type_family("NUMBER(38,0)") == sql.type_family("INT") == "FIXED"
    assert sql.type_family("VARCHAR(16777216)") == sql.type_family("TEXT") == "TEXT"
    assert sql.type_family("FLOAT") != sql.type_family("NUMBER(38,0)")


def test_stage_statements() -> None:
    path = stage_path("imednet", "Study 1/ü", "FORM_VS", "run-1", "abc")
    assert path.startswith("imednet/Study_1-") and path.endswith("/run-1/abc/FORM_VS/")
    # one REMOVE of the attempt's folder clears every table's files
    assert path.startswith(attempt_path("imednet", "Study 1/ü", "run-1", "abc"))
    assert sql.put_sql("/tmp/x/a.parquet", "IMEDNET_STAGE", path) == (
        f"PUT 'file:///tmp/x/a.parquet' @IMEDNET_STAGE/{path} PARALLEL=4 AUTO_COMPRESS=FALSE "
        "OVERWRITE=TRUE")
    assert sql.copy_into_sql("FORM_VS", "IMEDNET_STAGE", path) == (
        f'COPY INTO "FORM_VS" FROM @IMEDNET_STAGE/{path} FILE_FORMAT = (TYPE = PARQUET) '
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = ABORT_STATEMENT")
    assert sql.remove_sql("IMEDNET_STAGE", path) == f"REMOVE @IMEDNET_STAGE/{path}"
    # distinct study keys never share a folder, even when they clean up alike
    assert sql.path_segment("a b") != sql.path_segment("a_b") == "a_b"
    with pytest.raises(ValueError, match="not a plain identifier"):
        sql.stage_ref('my"stage')
    with pytest.raises(ValueError, match="would need quoting"):
        sql.stage_ref("S", "a b/")


def _files(*rows: int) -> list[StagedFile]:
    return [StagedFile(Path(f"/x/f{i}.parquet"), n, "c") for i, n in enumerate(rows)]


def test_copy_result_must_load_every_file_with_its_rows() -> None:
    files = _files(3, 2)
    ok = [("stage/p/f0.parquet", "LOADED", 3, 3, 1, 0, None),
          ("stage/p/f1.parquet", "LOADED", 2, 2, 1, 0, None)]
    check_copy(COPY_COLUMNS, ok, files)
    skipped = [ok[0], ("stage/p/f1.parquet", "LOAD_SKIPPED", 0, 0, None, 1,
                       "File was loaded before.")]
    with pytest.raises(ValueError, match="^COPY of f1.parquet: status LOAD_SKIPPED, 1 error"
                       r"\(s\), first: File was loaded before.$"):
        check_copy(COPY_COLUMNS, skipped, files)
    short = [ok[0], ("stage/p/f1.parquet", "LOADED", 2, 1, 1, 0, None)]
    with pytest.raises(ValueError, match="^COPY of f1.parquet loaded 1 rows, 2 were staged$"):
        check_copy(COPY_COLUMNS, short, files)
    with pytest.raises(ValueError, match="^COPY did not report file f1.parquet$"):
        check_copy(COPY_COLUMNS, ok[:1], files)
    with pytest.raises(ValueError, match=r"^COPY loaded files it was not given: \['f9.parquet'\]$"):
        check_copy(COPY_COLUMNS, [*ok, ("stage/p/f9.parquet", "LOADED", 1, 1, 1, 0, None)], files)
    with pytest.raises(ValueError, match=r"^COPY loaded no file \(Copy executed with 0 files"):
        check_copy([("status",)], [("Copy executed with 0 files processed.",)], files)


def test_sync_state_and_changed_keys_statements() -> None:
    assert sql.sync_state_table_sql() == (
        'CREATE TABLE IF NOT EXISTS "IMEDNET_SYNC_STATE" ("ASSET" VARCHAR, "STUDY_KEY" VARCHAR, '
        '"ENTITY" VARCHAR, "LAKE_TOKEN" VARCHAR)')
    assert sql.SYNC_STATE.select() == (
        'SELECT "ENTITY", "LAKE_TOKEN" FROM "IMEDNET_SYNC_STATE" '
        'WHERE "ASSET" = %s AND "STUDY_KEY" = %s ORDER BY "ENTITY"')
    assert sql.SYNC_STATE.delete() == (
        'DELETE FROM "IMEDNET_SYNC_STATE" WHERE "ASSET" = %s AND "STUDY_KEY" = %s')
    assert sql.insert_sync_state_sql(2) == (
        'INSERT INTO "IMEDNET_SYNC_STATE" ("ASSET", "STUDY_KEY", "ENTITY", "LAKE_TOKEN") '
        "VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)")
    assert sql.changed_keys_table_sql("NUMBER(38,0)") == (
        'CREATE OR REPLACE TEMPORARY TABLE "IMEDNET_CHANGED_KEYS" ("KEY" NUMBER(38,0))')
    assert sql.insert_changed_keys_sql(3) == (
        'INSERT INTO "IMEDNET_CHANGED_KEYS" ("KEY") VALUES (%s), (%s), (%s)')
    with pytest.raises(ValueError):
        sql.insert_changed_keys_sql(sql.MAX_VALUES_ROWS + 1)
    # the study always scopes the delete: other studies share ids
    assert sql.delete_keys_sql("FORM_VS", "RECORD_ID") == (
        'DELETE FROM "FORM_VS" WHERE "STUDY_KEY" = %s AND "RECORD_ID" IN '
        '(SELECT "KEY" FROM "IMEDNET_CHANGED_KEYS")')
    assert sql.count_slices_sql(["A", 'B"']) == (
        "SELECT 'A', COUNT(*) FROM \"A\" WHERE \"STUDY_KEY\" = %(study)s UNION ALL "
        "SELECT 'B\"', COUNT(*) FROM \"B\"\"\" WHERE \"STUDY_KEY\" = %(study)s")


def test_each_table_family_plans_from_the_slices_it_depends_on() -> None:
    slices = {e: LakeSlice(e, "S", Path(e), [], pa.schema([])) for e in ENTITIES}

    def write(*tables: str) -> SnowflakeWrite:
        return SnowflakeWrite("snowflake/x", "S", slices, frozenset(tables))

    assert (sorted(write("subjects").change_slices()), write("subjects").keyed) == (
        ["subjects"], ("subjects", "subject_id"))
    assert (sorted(write("visits").change_slices()), write("visits").keyed) == (
        ["visits"], ("visits", "visit_id"))
    assert (sorted(write("forms", "variables").change_slices()),
            write("forms", "variables").keyed) == (["forms", "variables"], None)
    for records in ("records_long", "form"):
        assert (sorted(write(records).change_slices()), write(records).keyed) == (
            ["forms", "records", "variables"], ("records", "record_id"))
    # tables keyed by different entities cannot be applied together
    assert write("subjects", "visits").keyed is None
