"""Pure SQL text for the SQL destination, per SQLAlchemy dialect (tested as text, no database).

Types come from SQLAlchemy's generic types compiled by the dialect, identifiers are always quoted
by the dialect's identifier preparer (EDC names may be SQL words or differ only by case), and the
study key is always a bound parameter.

MySQL / MariaDB differ enough to be spelled out here: identifiers are at most 64 characters,
TEXT holds only 64 kB (LONGTEXT is used), DATETIME drops fractions unless asked (DATETIME(6)),
a TEXT column is indexed by a prefix, comments are part of the column definition, tables are
InnoDB (transactions) with a binary, no-pad collation (the default collations are case-, accent-
and trailing-space-insensitive: study "a" would match "A " in a DELETE), and DDL commits
implicitly, so the writer syncs the schema before the data transaction there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

STUDY_COLUMN = "study_key"
FORM_TABLE_PREFIX = "form_"
#: The destination's own record of the lake state each asset applied (see `sync_state_table`).
SYNC_STATE_TABLE = "imednet_sync_state"

MYSQL_DIALECTS = ("mysql", "mariadb")
#: MySQL and MariaDB limit table, column and index names to 64 characters (SQLAlchemy's
#: `max_identifier_length` for the dialect is 255, the limit of labels, not of names).
MYSQL_IDENTIFIER_LENGTH = 64
#: Characters of a TEXT study key that its index covers (MySQL indexes TEXT by a prefix).
MYSQL_INDEX_PREFIX = 255


def is_mysql(dialect: Dialect) -> bool:
    """MySQL or MariaDB (SQLAlchemy names MariaDB `mysql` or `mariadb` by URL)."""
    return dialect.name in MYSQL_DIALECTS


def identifier_limit(dialect: Dialect) -> int:
    """The longest table or column name the database accepts, in bytes."""
    return MYSQL_IDENTIFIER_LENGTH if is_mysql(dialect) else dialect.max_identifier_length


def transactional_ddl(dialect: Dialect) -> bool:
    """Whether CREATE / ALTER can share the data's transaction (and roll back with it)."""
    return dialect.name in ("postgresql", "sqlite", "mssql")


def binary_collation(dialect: Dialect) -> str:
    """An exact (binary, no-pad) utf8mb4 collation: `'a' = 'A '` is false, as everywhere else."""
    if getattr(dialect, "is_mariadb", False):
        return "utf8mb4_nopad_bin"
    version = getattr(dialect, "server_version_info", None) or ()
    return "utf8mb4_0900_bin" if tuple(version[:1]) >= (8,) else "utf8mb4_bin"


def table_options(dialect: Dialect) -> dict[str, str]:
    """CREATE TABLE options: on MySQL InnoDB (transactions), utf8mb4, the exact collation."""
    if not is_mysql(dialect):
        return {}
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
            "mysql_collate": binary_collation(dialect)}


def _text() -> sa.types.TypeEngine:
    # MySQL TEXT stops at 64 kB; answers may be longer (LONGTEXT: 4 GB)
    return sa.Text().with_variant(mysql.LONGTEXT(), *MYSQL_DIALECTS)

#: Families of column types: a column whose family differs between studies is widened to text.
TEXT = "text"


def sql_type(arrow_type: pa.DataType) -> sa.types.TypeEngine:
    """The SQLAlchemy type holding an Arrow type; anything unusual becomes text."""
    t = arrow_type
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return sa.SmallInteger()
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return sa.Integer()
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return sa.BigInteger()
    if pa.types.is_uint64(t):
        return sa.Numeric(20, 0)
    if pa.types.is_floating(t):
        return sa.Double()
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_timestamp(t):
        # MySQL DATETIME rounds fractions away unless it is given a precision
        return sa.DateTime(timezone=t.tz is not None).with_variant(
            mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)
    if pa.types.is_time(t):
        return sa.Time().with_variant(mysql.TIME(fsp=6), *MYSQL_DIALECTS)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return sa.LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL_DIALECTS)
    return _text()


def family(sql: sa.types.TypeEngine) -> str:
    """A coarse kind of a (possibly reflected) column type, to compare a table with new data."""
    checks: list[tuple[type, str]] = [
        (sa.Boolean, "boolean"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (sa.Integer, "integer"),
        (sa.Float, "float"),
        (sa.Numeric, "numeric"),
        (sa.String, TEXT),
        (sa.LargeBinary, "binary"),
    ]
    if isinstance(sql, mysql.TINYINT) and sql.display_width == 1:
        return "boolean"  # MySQL's BOOLEAN is TINYINT(1), and reflects as such
    for cls, name in checks:
        if isinstance(sql, cls):
            return name
    return "other"


def q(dialect: Dialect, name: str) -> str:
    """An identifier, always quoted (embedded quotes escaped the dialect's way)."""
    return dialect.identifier_preparer.quote_identifier(name)


def table_ref(dialect: Dialect, schema: str | None, table: str) -> str:
    return f"{q(dialect, schema)}.{q(dialect, table)}" if schema else q(dialect, table)


def literal(value: str, dialect: Dialect | None = None) -> str:
    """A SQL string constant: embedded single quotes doubled, and backslashes escaped where the
    dialect treats them as escapes (MySQL unless NO_BACKSLASH_ESCAPES)."""
    if dialect is not None:
        return str(sa.literal(value, sa.String()).compile(
            dialect=dialect, compile_kwargs={"literal_binds": True}))
    return "'" + value.replace("'", "''") + "'"


def table_object(
    schema: str | None,
    table: str,
    columns: Sequence[tuple[str, sa.types.TypeEngine]],
    *,
    comments: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> sa.Table:
    """A SQLAlchemy table with every identifier force-quoted (for CREATE and generic INSERT);
    `comments` become part of the column definitions where the dialect writes them inline."""
    notes = comments or {}
    cols = [sa.Column(name, ctype, quote=True, nullable=True, comment=notes.get(name))
            for name, ctype in columns]
    return sa.Table(table, sa.MetaData(), *cols, schema=schema, quote=True, quote_schema=True,
                    **(options or {}))


def create_table_sql(
    dialect: Dialect,
    schema: str | None,
    table: str,
    columns: Sequence[tuple[str, sa.types.TypeEngine]],
    comments: Mapping[str, str] | None = None,
) -> str:
    """CREATE TABLE; `comments` are written inline on MySQL (elsewhere: `comment_column_sql`)."""
    obj = table_object(schema, table, columns, comments=comments if is_mysql(dialect) else None,
                       options=table_options(dialect))
    return str(sa.schema.CreateTable(obj).compile(dialect=dialect)).strip()


def create_schema_sql(dialect: Dialect, schema: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {q(dialect, schema)}"


def study_index_sql(dialect: Dialect, schema: str | None, table: str, index: str) -> str:
    """An index on the study key, so replacing one study's slice does not scan every study."""
    # MySQL cannot index a TEXT column whole: a prefix serves the equality lookups
    prefix = f"({MYSQL_INDEX_PREFIX})" if is_mysql(dialect) else ""
    return (
        f"CREATE INDEX {q(dialect, index)} ON {table_ref(dialect, schema, table)} "
        f"({q(dialect, STUDY_COLUMN)}{prefix})"
    )


def add_column_sql(
    dialect: Dialect,
    schema: str | None,
    table: str,
    column: str,
    ctype: sa.types.TypeEngine,
    comment: str | None = None,
) -> str:
    """ADD COLUMN; a `comment` is written inline on MySQL (elsewhere: `comment_column_sql`)."""
    note = f" COMMENT {literal(comment, dialect)}" if comment and is_mysql(dialect) else ""
    return (
        f"ALTER TABLE {table_ref(dialect, schema, table)} "
        f"ADD COLUMN {q(dialect, column)} {ctype.compile(dialect=dialect)}{note}"
    )


class WideningUnsupported(Exception):
    """The dialect cannot change a column's type in place (SQLite)."""


def widen_column_sql(dialect: Dialect, schema: str | None, table: str, column: str) -> str:
    """Turn a typed column into text, converting the values it holds."""
    ref, col = table_ref(dialect, schema, table), q(dialect, column)
    text = sa.Text().compile(dialect=dialect)
    name = dialect.name
    if name == "postgresql":
        return f"ALTER TABLE {ref} ALTER COLUMN {col} TYPE {text} USING CAST({col} AS {text})"
    if name in ("mysql", "mariadb"):
        return f"ALTER TABLE {ref} MODIFY COLUMN {col} LONGTEXT"
    if name == "mssql":
        return f"ALTER TABLE {ref} ALTER COLUMN {col} NVARCHAR(max)"
    if name == "sqlite":
        # SQLite has no ALTER COLUMN; a table rebuild would lose the raw-column markers
        raise WideningUnsupported(
            f"column {column!r} of table {table!r} holds different types in different studies; "
            "SQLite cannot change a column's type, use a database that can (e.g. PostgreSQL)"
        )
    return f"ALTER TABLE {ref} ALTER COLUMN {col} SET DATA TYPE {text}"


def raw_comment(column: str) -> str:
    """The comment that marks a column as the raw API text of `column` (found when widening)."""
    return f'raw text of column "{column}"'


def comment_column_sql(
    dialect: Dialect, schema: str | None, table: str, column: str, comment: str
) -> str:
    return (
        f"COMMENT ON COLUMN {table_ref(dialect, schema, table)}.{q(dialect, column)} "
        f"IS {literal(comment, dialect)}"
    )


def restore_raw_sql(
    dialect: Dialect, schema: str | None, table: str, column: str, raw_column: str
) -> str:
    """After widening, put back the exact API text (`128`, not a cast's `128.0`)."""
    col, raw = q(dialect, column), q(dialect, raw_column)
    return (
        f"UPDATE {table_ref(dialect, schema, table)} SET {col} = {raw} WHERE {raw} IS NOT NULL"
    )


def delete_slice_sql(dialect: Dialect, schema: str | None, table: str) -> str:
    """Delete one study's rows; the study key is the bound parameter `:study`."""
    return (
        f"DELETE FROM {table_ref(dialect, schema, table)} "
        f"WHERE {q(dialect, STUDY_COLUMN)} = :study"
    )


def count_slice_sql(dialect: Dialect, schema: str | None, table: str) -> str:
    return (
        f"SELECT count(*) FROM {table_ref(dialect, schema, table)} "
        f"WHERE {q(dialect, STUDY_COLUMN)} = :study"
    )


def select_slice_sql(dialect: Dialect, schema: str | None, table: str) -> str:
    return (
        f"SELECT * FROM {table_ref(dialect, schema, table)} "
        f"WHERE {q(dialect, STUDY_COLUMN)} = :study"
    )


def copy_sql(dialect: Dialect, schema: str | None, table: str, columns: Sequence[str]) -> str:
    """PostgreSQL `COPY ... FROM STDIN` of CSV whose columns come in `columns` order.

    CSV as pyarrow writes it: strings always quoted, NULL as an unquoted empty field, so `""` is
    an empty string and nothing is NULL that was not NULL.
    """
    cols = ", ".join(q(dialect, c) for c in columns)
    return f"COPY {table_ref(dialect, schema, table)} ({cols}) FROM STDIN (FORMAT csv)"


def delete_keys_sql(dialect: Dialect, schema: str | None, table: str, key: str) -> str:
    """Delete one study's rows of some keys: `:study` bound, `:keys` an expanding parameter
    (`sa.text(...).bindparams(sa.bindparam("keys", expanding=True))`)."""
    return (
        f"DELETE FROM {table_ref(dialect, schema, table)} "
        f"WHERE {q(dialect, STUDY_COLUMN)} = :study AND {q(dialect, key)} IN :keys"
    )


# -- sync state ----------------------------------------------------------------------------------
# One row per (asset, study, lake entity): the lake token the asset's rows were built from. It is
# replaced in the transaction that writes the rows, so it is exactly what the tables hold.

SYNC_STATE_COLUMNS = ("asset", "study_key", "entity", "lake_token")


def sync_state_table(dialect: Dialect, schema: str | None) -> sa.Table:
    """The sync-state table (beside the data, in the same schema), identifiers quoted."""
    columns = [(name, _text()) for name in SYNC_STATE_COLUMNS]
    return table_object(schema, SYNC_STATE_TABLE, columns, options=table_options(dialect))


def create_sync_state_sql(dialect: Dialect, schema: str | None) -> str:
    create = sa.schema.CreateTable(sync_state_table(dialect, schema), if_not_exists=True)
    return str(create.compile(dialect=dialect)).strip()


def read_sync_state(table: sa.Table) -> sa.Select:
    """entity, lake_token of `:asset` and `:study`."""
    return (
        sa.select(table.c.entity, table.c.lake_token)
        .where(table.c.asset == sa.bindparam("asset"),
               table.c.study_key == sa.bindparam("study"))
        .order_by(table.c.entity)
    )


def delete_sync_state(table: sa.Table) -> sa.Delete:
    """The rows of `:asset` and `:study`."""
    return sa.delete(table).where(table.c.asset == sa.bindparam("asset"),
                                  table.c.study_key == sa.bindparam("study"))
