"""The SQL destination's statements as text, per dialect (no database)."""

from __future__ import annotations

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from imednet_assets.defs.sinks.sql import ddl

PG = postgresql.dialect()
LITE = sqlite.dialect()
HOSTILE = 'odd "name" \'$.select'


def test_identifiers_are_always_quoted_with_quotes_escaped() -> None:
    assert ddl.q(PG, "plain") == '"plain"'
    assert ddl.q(PG, "select") == '"select"'
    assert ddl.q(PG, HOSTILE) == '"odd ""name"" \'$.select"'
    assert ddl.table_ref(PG, "my schema", "form_VS") == '"my schema"."form_VS"'
    assert ddl.table_ref(LITE, None, "AGE") == '"AGE"'
    assert ddl.q(mysql.dialect(), "a`b") == "`a``b`"


def test_create_table_types_and_quoting_per_dialect() -> None:
    schema = pa.schema([
        ("study_key", pa.string()), ("record_id", pa.int64()), ("select", pa.float64()),
        ("ok", pa.bool_()), ("day", pa.date32()), ("at", pa.timestamp("us")),
        ("at_tz", pa.timestamp("us", "UTC")), ("n", pa.int32()), ("nothing", pa.null()),
    ])  # fmt: skip
    cols = [(f.name, ddl.sql_type(f.type)) for f in schema]
    assert ddl.create_table_sql(PG, "s", "form_VS", cols).split("\n") == [
        'CREATE TABLE "s"."form_VS" (',
        '\t"study_key" TEXT, ',
        '\t"record_id" BIGINT, ',
        '\t"select" DOUBLE PRECISION, ',
        '\t"ok" BOOLEAN, ',
        '\t"day" DATE, ',
        '\t"at" TIMESTAMP WITHOUT TIME ZONE, ',
        '\t"at_tz" TIMESTAMP WITH TIME ZONE, ',
        '\t"n" INTEGER, ',
        '\t"nothing" TEXT',
        ")",
    ]
    lite = ddl.create_table_sql(LITE, None, "t", cols[:4])
    assert lite.split("\n")[1:4] == ['\t"study_key" TEXT, ', '\t"record_id" BIGINT, ',
                                     '\t"select" DOUBLE, ']


def test_type_families_compare_reflected_and_wanted_types() -> None:
    assert ddl.family(postgresql.DOUBLE_PRECISION()) == ddl.family(sa.Double()) == "float"
    assert ddl.family(postgresql.TEXT()) == ddl.family(sa.Text()) == "text"
    assert ddl.family(sa.VARCHAR(20)) == "text"
    assert ddl.family(postgresql.TIMESTAMP()) == "datetime"
    assert ddl.family(sa.Date()) == "date"
    assert ddl.family(sa.BigInteger()) == ddl.family(sa.Integer()) == "integer"
    assert ddl.family(sa.Boolean()) == "boolean"
    assert ddl.family(sa.types.NullType()) == "other"


def test_study_slice_statements_bind_the_study_key() -> None:
    assert ddl.delete_slice_sql(PG, "s", "form_VS") == (
        'DELETE FROM "s"."form_VS" WHERE "study_key" = :study')
    assert ddl.count_slice_sql(LITE, None, "t") == (
        'SELECT count(*) FROM "t" WHERE "study_key" = :study')
    assert ddl.copy_sql(PG, "s", "t", ["study_key", HOSTILE]) == (
        'COPY "s"."t" ("study_key", "odd ""name"" \'$.select") FROM STDIN (FORMAT csv)')


def test_schema_evolution_statements() -> None:
    assert ddl.add_column_sql(PG, "s", "t", "Gr_e", sa.Double()) == (
        'ALTER TABLE "s"."t" ADD COLUMN "Gr_e" DOUBLE PRECISION')
    assert ddl.widen_column_sql(PG, "s", "t", "sysbp") == (
        'ALTER TABLE "s"."t" ALTER COLUMN "sysbp" TYPE TEXT USING CAST("sysbp" AS TEXT)')
    assert ddl.widen_column_sql(mysql.dialect(), None, "t", "sysbp") == (
        "ALTER TABLE `t` MODIFY COLUMN `sysbp` LONGTEXT")
    with pytest.raises(ddl.WideningUnsupported, match="SQLite cannot change a column's type"):
        ddl.widen_column_sql(LITE, None, "t", "sysbp")
    assert ddl.restore_raw_sql(PG, None, "t", "sysbp", "sysbp__raw_2") == (
        'UPDATE "t" SET "sysbp" = "sysbp__raw_2" WHERE "sysbp__raw_2" IS NOT NULL')
    assert ddl.comment_column_sql(PG, "s", "t", "x__raw", ddl.raw_comment("it's")) == (
        'COMMENT ON COLUMN "s"."t"."x__raw" IS \'raw text of column "it\'\'s"\'')
    assert ddl.study_index_sql(PG, "s", "t", "ix_t_study_key") == (
        'CREATE INDEX "ix_t_study_key" ON "s"."t" ("study_key")')
