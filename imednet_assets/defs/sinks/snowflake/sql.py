"""Pure Snowflake SQL text builders for the Snowflake sink (no connection, so tested as text).

Tables and columns are always double-quoted, in upper case: Snowflake folds unquoted names to upper
case, so `SELECT * FROM records_long` finds `"RECORDS_LONG"`, and the names the dictionary keeps
(`form_VS`, `Pain_Level`) resolve unquoted. The naming plan already makes names unique
case-insensitively, so upper-casing never merges two columns. Values are bound parameters
(`%s`, the connector's default paramstyle) except in DDL, where they are quoted literals.
Stage references stay unquoted (`@NAME/path/`): the stage name is checked to be a plain identifier
and every path segment is made of `[A-Za-z0-9_.=-]`, so nothing in them needs quoting.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import pyarrow as pa

from imednet_assets.defs.sinks.changes import SyncStateSql
from imednet_assets.defs.sinks.common import TableDdl

STUDY_COLUMN = "STUDY_KEY"
FORM_TABLE_PREFIX = "FORM_"
MANIFEST_TABLE = "IMEDNET_LOAD_MANIFEST"
MANIFEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("BATCH_ID", "VARCHAR"),
    ("STUDY_KEY", "VARCHAR"),
    ("TABLE_NAME", "VARCHAR"),
    ("STAGE_PATH", "VARCHAR"),
    ("FILE_NAME", "VARCHAR"),
    ("ROWS", "NUMBER(38,0)"),
    ("CHECKSUM", "VARCHAR"),
    ("RUN_ID", "VARCHAR"),
    ("LOADED_AT", "TIMESTAMP_NTZ(6)"),
)

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_.=-]{1,100}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def name(identifier: str) -> str:
    """The Snowflake spelling of a sink table or column name (upper case)."""
    return identifier.upper()


def quote_ident(identifier: str) -> str:
    """A Snowflake identifier, double-quoted with embedded quotes doubled."""
    return '"' + identifier.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A Snowflake string constant: quotes doubled, backslashes escaped (they are escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def is_plain_identifier(identifier: str) -> bool:
    """Whether `identifier` can stand unquoted (stage, database, schema names)."""
    return bool(_PLAIN_IDENTIFIER.match(identifier))


def path_segment(value: str) -> str:
    """A stage path segment for `value`: itself when safe, else a readable form plus a digest
    (distinct keys never share a folder)."""
    if _SAFE_SEGMENT.match(value) and value not in (".", ".."):
        return value
    digest = hashlib.sha1(value.encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', value).strip('_.')[:60]}-{digest}"


def snowflake_type(arrow_type: pa.DataType) -> str:
    """The column type for an Arrow type of a study table (nested values arrive as JSON text)."""
    t = arrow_type
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "NUMBER(38,0)"
    if pa.types.is_floating(t):
        return "FLOAT"
    if pa.types.is_decimal(t):
        return f"NUMBER({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        precision = {"s": 0, "ms": 3, "us": 6, "ns": 9}[t.unit]
        return f"TIMESTAMP_{'TZ' if t.tz else 'NTZ'}({precision})"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BINARY"
    return "VARCHAR"


_FAMILIES = {
    "VARCHAR": "TEXT", "TEXT": "TEXT", "STRING": "TEXT", "CHAR": "TEXT", "CHARACTER": "TEXT",
    "NUMBER": "FIXED", "DECIMAL": "FIXED", "NUMERIC": "FIXED", "INT": "FIXED", "INTEGER": "FIXED",
    "BIGINT": "FIXED", "SMALLINT": "FIXED", "TINYINT": "FIXED", "BYTEINT": "FIXED",
    "FLOAT": "REAL", "FLOAT4": "REAL", "FLOAT8": "REAL", "DOUBLE": "REAL", "REAL": "REAL",
    "DOUBLE PRECISION": "REAL",
}


def catalog_type(column_type: str) -> str:
    """How the catalog (INFORMATION_SCHEMA.COLUMNS, as `loader.read_catalog` renders it) names a
    column made with `column_type` of `snowflake_type`, so a table this load created or altered
    need not be read back: `VARCHAR` is `TEXT`, timestamps lose their precision."""
    if column_type == "VARCHAR":
        return "TEXT"
    if column_type.startswith("TIMESTAMP_"):
        return column_type.split("(")[0]
    return column_type


def type_family(column_type: str) -> str:
    """What kind of value a column type holds (`NUMBER(38,0)` and `INT` are both FIXED), so
    types compare without their precision."""
    base = column_type.split("(")[0].strip().upper()
    return _FAMILIES.get(base, base)


# tables are created once and shared by every study: a second CREATE must not fail
_DDL = TableDdl(quote_ident, "CREATE TABLE IF NOT EXISTS")
create_table_sql = _DDL.create_table
add_column_sql = _DDL.add_column


def drop_column_sql(table: str, column: str) -> str:
    return f"ALTER TABLE {quote_ident(table)} DROP COLUMN {quote_ident(column)}"


def rename_column_sql(table: str, column: str, new: str) -> str:
    old, new = quote_ident(column), quote_ident(new)
    return f"ALTER TABLE {quote_ident(table)} RENAME COLUMN {old} TO {new}"


def fill_text_sql(table: str, target: str, column: str, raw_columns: Sequence[str]) -> str:
    """Set text column `target` from the raw API text where known, else the typed value as text."""
    sources = [quote_ident(c) for c in raw_columns] + [f"TO_VARCHAR({quote_ident(column)})"]
    value = sources[0] if len(sources) == 1 else f"COALESCE({', '.join(sources)})"
    return f"UPDATE {quote_ident(table)} SET {quote_ident(target)} = {value}"


def catalog_sql(one_table: bool = False) -> str:
    """(table, column, type, precision, scale) of every base table of the current schema (or of
    table %s), in table order: one round trip where a DESCRIBE per table costs dozens."""
    which = " AND t.TABLE_NAME = %s" if one_table else ""
    return (
        "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.NUMERIC_PRECISION, c.NUMERIC_SCALE "
        "FROM INFORMATION_SCHEMA.COLUMNS AS c JOIN INFORMATION_SCHEMA.TABLES AS t "
        "ON t.TABLE_CATALOG = c.TABLE_CATALOG AND t.TABLE_SCHEMA = c.TABLE_SCHEMA "
        "AND t.TABLE_NAME = c.TABLE_NAME "
        f"WHERE t.TABLE_SCHEMA = CURRENT_SCHEMA() AND t.TABLE_TYPE = 'BASE TABLE'{which} "
        "ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION"
    )


def list_tables_sql() -> str:
    """Base tables of the current schema (the caller filters by prefix: no LIKE escaping games)."""
    return (
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA = CURRENT_SCHEMA() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
    )


def raw_columns_sql(forms_table: str, variables_table: str) -> str:
    """Raw-text columns the dictionary names for column %s of form table %s (any study); used to
    refill a column widened to text with the API's exact text."""
    f, v = quote_ident(forms_table), quote_ident(variables_table)
    return (
        f'SELECT DISTINCT v."RAW_COLUMN_NAME" FROM {v} AS v JOIN {f} AS f '
        'ON f."STUDY_KEY" = v."STUDY_KEY" AND f."FORM_KEY" = v."FORM_KEY" '
        'WHERE UPPER(f."TABLE_NAME") = %s AND UPPER(v."COLUMN_NAME") = %s '
        'AND v."RAW_COLUMN_NAME" IS NOT NULL ORDER BY 1'
    )


def delete_slice_sql(table: str) -> str:
    return f"DELETE FROM {quote_ident(table)} WHERE {quote_ident(STUDY_COLUMN)} = %s"


def count_slice_sql(table: str) -> str:
    return f"SELECT COUNT(*) FROM {quote_ident(table)} WHERE {quote_ident(STUDY_COLUMN)} = %s"


def count_slices_sql(tables: Sequence[str]) -> str:
    """(table name, the study's rows) of every table in one statement; the study is
    `%(study)s` (one round trip, not one per table)."""
    return " UNION ALL ".join(
        f"SELECT {quote_literal(t)}, COUNT(*) FROM {quote_ident(t)} "
        f"WHERE {quote_ident(STUDY_COLUMN)} = %(study)s"
        for t in tables
    )


def preview_slice_sql(table: str, columns: Sequence[str], limit: int = 5) -> str:
    cols = ", ".join(f"TO_VARCHAR({quote_ident(c)}) AS {quote_ident(c)}" for c in columns)
    return (
        f"SELECT {cols} FROM {quote_ident(table)} WHERE {quote_ident(STUDY_COLUMN)} = %s "
        f"LIMIT {int(limit)}"
    )


def stage_ref(stage: str, path: str = "") -> str:
    """`@STAGE/path` (unquoted: `stage` is a plain identifier, `path` made of safe segments)."""
    if not is_plain_identifier(stage):
        raise ValueError(f"stage name {stage!r} is not a plain identifier")
    if path and not all(_SAFE_SEGMENT.match(p) for p in path.strip("/").split("/")):
        raise ValueError(f"stage path {path!r} has characters that would need quoting")
    return f"@{stage}/{path}" if path else f"@{stage}"


def create_stage_sql(stage: str) -> str:
    return f"CREATE STAGE IF NOT EXISTS {stage_ref(stage)[1:]}"


def put_sql(local_file: str, stage: str, path: str, parallel: int = 4) -> str:
    """Upload one local Parquet file as is (already compressed: no gzip on top)."""
    return (
        f"PUT {quote_literal('file://' + local_file)} {stage_ref(stage, path)} "
        f"PARALLEL={int(parallel)} AUTO_COMPRESS=FALSE OVERWRITE=TRUE"
    )


def copy_into_sql(table: str, stage: str, path: str) -> str:
    """Load every file of the load's own stage folder (nobody else writes there), columns matched
    by name; the caller checks the result names exactly its files."""
    return (
        f"COPY INTO {quote_ident(table)} FROM {stage_ref(stage, path)} "
        "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE "
        "ON_ERROR = ABORT_STATEMENT"
    )


def remove_sql(stage: str, path: str) -> str:
    return f"REMOVE {stage_ref(stage, path)}"


def list_stage_sql(stage: str, path: str = "") -> str:
    return f"LIST {stage_ref(stage, path)}"


def manifest_table_sql() -> str:
    return create_table_sql(MANIFEST_TABLE, MANIFEST_COLUMNS)


def insert_manifest_sql(rows: int) -> str:
    """INSERT of `rows` manifest rows, one `%s` per value."""
    cols = ", ".join(quote_ident(c) for c, _ in MANIFEST_COLUMNS)
    one = "(" + ", ".join(["%s"] * len(MANIFEST_COLUMNS)) + ")"
    return f"INSERT INTO {quote_ident(MANIFEST_TABLE)} ({cols}) VALUES " + ", ".join([one] * rows)


# -- incremental changes and sync state -------------------------------------------------------

#: What each asset has applied, per study and lake entity: written in the same transaction as
#: the rows, so it is exact under failures (see `sinks/changes.py`).
SYNC_STATE_TABLE = "IMEDNET_SYNC_STATE"
SYNC_STATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ASSET", "VARCHAR"),
    ("STUDY_KEY", "VARCHAR"),
    ("ENTITY", "VARCHAR"),
    ("LAKE_TOKEN", "VARCHAR"),
)
#: The changed keys of an incremental apply: a session's own temporary table, so concurrent
#: sessions never see each other's keys and nothing is left behind when the session ends.
CHANGED_KEYS_TABLE = "IMEDNET_CHANGED_KEYS"
#: Snowflake takes at most 16,384 rows in one VALUES clause.
MAX_VALUES_ROWS = 10_000


def sync_state_table_sql() -> str:
    return create_table_sql(SYNC_STATE_TABLE, SYNC_STATE_COLUMNS)


#: reading and clearing an asset's sync state for a study (upper-case quoted columns)
SYNC_STATE = SyncStateSql(quote_ident(SYNC_STATE_TABLE), lambda c: quote_ident(c.upper()), "%s")


def insert_sync_state_sql(rows: int) -> str:
    """INSERT of `rows` sync-state rows (asset, study, entity, token), one `%s` per value."""
    cols = ", ".join(quote_ident(c) for c, _ in SYNC_STATE_COLUMNS)
    one = "(" + ", ".join(["%s"] * len(SYNC_STATE_COLUMNS)) + ")"
    return f"INSERT INTO {quote_ident(SYNC_STATE_TABLE)} ({cols}) VALUES " + ", ".join([one] * rows)


def changed_keys_table_sql(key_type: str) -> str:
    """A fresh, empty temporary key table (DDL: run it before the data transaction)."""
    return f'CREATE OR REPLACE TEMPORARY TABLE {quote_ident(CHANGED_KEYS_TABLE)} ("KEY" {key_type})'


def insert_changed_keys_sql(rows: int) -> str:
    """INSERT of `rows` keys, one `%s` each (at most `MAX_VALUES_ROWS`)."""
    if not 0 < rows <= MAX_VALUES_ROWS:
        raise ValueError(f"insert 1 to {MAX_VALUES_ROWS} keys at a time, not {rows}")
    return f'INSERT INTO {quote_ident(CHANGED_KEYS_TABLE)} ("KEY") VALUES ' + ", ".join(
        ["(%s)"] * rows)


def delete_keys_sql(table: str, key: str) -> str:
    """Delete the study's (%s) rows whose `key` is one of the changed keys."""
    return (
        f"DELETE FROM {quote_ident(table)} WHERE {quote_ident(STUDY_COLUMN)} = %s AND "
        f'{quote_ident(key)} IN (SELECT "KEY" FROM {quote_ident(CHANGED_KEYS_TABLE)})'
    )
