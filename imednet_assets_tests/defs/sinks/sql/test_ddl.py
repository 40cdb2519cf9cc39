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


MY = mysql.dialect()
MARIA = mysql.dialect(is_mariadb=True)


def test_mysql_tables_hold_long_text_exact_keys_and_fractions() -> None:
    cols = [(n, ddl.sql_type(t)) for n, t in [
        ("study_key", pa.string()), ("select", pa.float64()), ("ok", pa.bool_()),
        ("at", pa.timestamp("ms")), ("raw", pa.string())]]
    created = ddl.create_table_sql(MARIA, "db", "form_VS", cols, {"raw": 'raw text of "a\\b"'})
    assert created.split("\n") == [
        "CREATE TABLE `db`.`form_VS` (",
        "\t`study_key` LONGTEXT, ",  # TEXT stops at 64 kB
        "\t`select` DOUBLE, ",
        "\t`ok` BOOL, ",
        "\t`at` DATETIME(6), ",  # plain DATETIME drops fractions
        "\t`raw` LONGTEXT COMMENT 'raw text of \"a\\\\b\"'",  # inline, backslash escaped
        ")ENGINE=InnoDB CHARSET=utf8mb4 COLLATE utf8mb4_nopad_bin",  # 'a' = 'A ' is false
    ]
    assert "COLLATE utf8mb4_bin" in ddl.create_table_sql(MY, None, "t", cols)
    # a TEXT column is indexed by a prefix
    assert ddl.study_index_sql(MY, None, "t", "ix") == "CREATE INDEX `ix` ON `t` (`study_key`(255))"
    assert ddl.add_column_sql(MY, None, "t", "x__raw", ddl.sql_type(pa.string()), "c'") == (
        "ALTER TABLE `t` ADD COLUMN `x__raw` LONGTEXT COMMENT 'c'''")
    assert ddl.add_column_sql(PG, None, "t", "x__raw", sa.Text(), "ignored") == (
        'ALTER TABLE "t" ADD COLUMN "x__raw" TEXT')  # PostgreSQL: COMMENT ON afterwards


def test_dialect_facts_the_writer_relies_on() -> None:
    assert (ddl.identifier_limit(PG), ddl.identifier_limit(MY)) == (63, 64)
    assert ddl.transactional_ddl(PG) and ddl.transactional_ddl(LITE)
    assert not ddl.transactional_ddl(MY)  # MySQL DDL commits implicitly
    assert ddl.family(mysql.TINYINT(display_width=1)) == "boolean"  # how BOOL reflects
    assert ddl.family(mysql.TINYINT()) == "integer"
    assert (ddl.family(mysql.LONGTEXT()), ddl.family(mysql.DOUBLE())) == ("text", "float")


def test_changed_keys_and_sync_state_statements() -> None:
    assert ddl.delete_keys_sql(MY, "db", "form_VS", "record_id") == (
        "DELETE FROM `db`.`form_VS` WHERE `study_key` = :study AND `record_id` IN :keys")
    assert ddl.create_sync_state_sql(PG, "s") == (
        'CREATE TABLE IF NOT EXISTS "s"."imednet_sync_state" (\n\t"asset" TEXT, \n'
        '\t"study_key" TEXT, \n\t"entity" TEXT, \n\t"lake_token" TEXT\n)')
    table = ddl.sync_state_table(MY, None)
    read = str(ddl.read_sync_state(table).compile(dialect=MY))
    assert read == ("SELECT `imednet_sync_state`.`entity`, `imednet_sync_state`.`lake_token` \n"
                    "FROM `imednet_sync_state` \nWHERE `imednet_sync_state`.`asset` = %s "
                    "AND `imednet_sync_state`.`study_key` = %s "
                    "ORDER BY `imednet_sync_state`.`entity`")
