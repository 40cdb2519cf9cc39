"""Pure SQL text for the SQL destination, per SQLAlchemy dialect (tested as text, no database).

Types come from SQLAlchemy's generic types compiled by the dialect, identifiers are always quoted
by the dialect's identifier preparer (EDC names may be SQL words or differ only by case), and the
study key is always a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

STUDY_COLUMN = "study_key"
FORM_TABLE_PREFIX = "form_"

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
        return sa.DateTime(timezone=t.tz is not None)
    if pa.types.is_time(t):
        return sa.Time()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return sa.LargeBinary()
    return sa.Text()


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
    for cls, name in checks:
        if isinstance(sql, cls):
            return name
    return "other"


def q(dialect: Dialect, name: str) -> str:
    """An identifier, always quoted (embedded quotes escaped the dialect's way)."""
    return dialect.identifier_preparer.quote_identifier(name)


def table_ref(dialect: Dialect, schema: str | None, table: str) -> str:
    return f"{q(dialect, schema)}.{q(dialect, table)}" if schema else q(dialect, table)


def literal(value: str) -> str:
    """A SQL string constant (standard quoting: embedded single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def table_object(
    schema: str | None, table: str, columns: Sequence[tuple[str, sa.types.TypeEngine]]
) -> sa.Table:
    """A SQLAlchemy table with every identifier force-quoted (for CREATE and generic INSERT)."""
    cols = [sa.Column(name, ctype, quote=True, nullable=True) for name, ctype in columns]
    return sa.Table(table, sa.MetaData(), *cols, schema=schema, quote=True, quote_schema=True)


def create_table_sql(
    dialect: Dialect,
    schema: str | None,
    table: str,
    columns: Sequence[tuple[str, sa.types.TypeEngine]],
) -> str:
    ddl = sa.schema.CreateTable(table_object(schema, table, columns))
    return str(ddl.compile(dialect=dialect)).strip()


def create_schema_sql(dialect: Dialect, schema: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {q(dialect, schema)}"


def study_index_sql(dialect: Dialect, schema: str | None, table: str, index: str) -> str:
    """An index on the study key, so replacing one study's slice does not scan every study."""
    return (
        f"CREATE INDEX {q(dialect, index)} ON {table_ref(dialect, schema, table)} "
        f"({q(dialect, STUDY_COLUMN)})"
    )


def add_column_sql(
    dialect: Dialect, schema: str | None, table: str, column: str, ctype: sa.types.TypeEngine
) -> str:
    return (
        f"ALTER TABLE {table_ref(dialect, schema, table)} "
        f"ADD COLUMN {q(dialect, column)} {ctype.compile(dialect=dialect)}"
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
        f"IS {literal(comment)}"
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
