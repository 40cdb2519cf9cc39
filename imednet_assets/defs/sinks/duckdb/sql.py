"""Pure SQL text builders for the DuckDB sink (no connection here, so they are tested as text).

Every identifier goes through `quote_ident` and every string constant through `quote_literal`:
variable and form names come from the EDC and may hold spaces, `$`, `.`, quotes, SQL keywords or
unicode. The study key is always a bound parameter (`?`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from imednet_assets.defs.sinks.changes import SyncStateSql
from imednet_assets.defs.sinks.common import TableDdl
from imednet_assets.defs.sinks.duckdb.naming import META_COLUMNS, VariableColumn

SCHEMA = "main"
FORM_TABLE_PREFIX = "form_"


def quote_ident(name: str) -> str:
    """A DuckDB identifier, double-quoted with embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A DuckDB string constant, single-quoted with embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def table_ref(table: str) -> str:
    return f"{quote_ident(SCHEMA)}.{quote_ident(table)}"


def read_parquet_sql(files: Iterable[Path | str], *, filename: bool = False) -> str:
    """`read_parquet` over an explicit file list, columns matched by name across files
    (`filename`: plus a `filename` column).

    Hive partitioning is off: the lake files carry `study_key`/`form_key` as real columns, and the
    percent-encoded folder names must not be decoded into a second, differently typed copy.
    """
    listed = ", ".join(quote_literal(str(f)) for f in files)
    extra = ", filename = true" if filename else ""
    return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false{extra})"


def change_rows_sql(files: list[Path], key: str) -> str:
    """FROM text of the rows the lake's merges wrote (`files` oldest first, named so they sort
    so): the newest row of each key."""
    if len(files) == 1:
        return read_parquet_sql(files)
    return (
        f"(SELECT * EXCLUDE (filename) FROM {read_parquet_sql(files, filename=True)} "
        f"QUALIFY row_number() OVER (PARTITION BY {quote_ident(key)} ORDER BY filename DESC) = 1)"
    )


_DDL = TableDdl(table_ref)
create_table_sql = _DDL.create_table
add_column_sql = _DDL.add_column


def widen_column_sql(table: str, column: str) -> str:
    """Turn a typed column into text; DuckDB casts the existing values in place."""
    col = quote_ident(column)
    return f"ALTER TABLE {table_ref(table)} ALTER COLUMN {col} SET DATA TYPE VARCHAR"


def restore_raw_sql(table: str, column: str, raw_column: str) -> str:
    """After widening, put back the exact API text (`128`, not the cast's `128.0`)."""
    col, raw = quote_ident(column), quote_ident(raw_column)
    return f"UPDATE {table_ref(table)} SET {col} = {raw} WHERE {raw} IS NOT NULL"


def raw_comment(column: str) -> str:
    """The comment that marks a column as the raw text of `column` (found again when widening)."""
    return f"raw text of column {quote_ident(column)}"


def comment_column_sql(table: str, column: str, comment: str) -> str:
    col = quote_ident(column)
    return f"COMMENT ON COLUMN {table_ref(table)}.{col} IS {quote_literal(comment)}"


def delete_slice_sql(table: str) -> str:
    return f"DELETE FROM {table_ref(table)} WHERE {quote_ident('study_key')} = ?"


def insert_by_name_sql(table: str, select_sql: str) -> str:
    return f"INSERT INTO {table_ref(table)} BY NAME {select_sql}"


def describe_sql(select_sql: str) -> str:
    return f"DESCRIBE {select_sql}"


def count_slice_sql(table: str) -> str:
    return f"SELECT count(*) FROM {table_ref(table)} WHERE {quote_ident('study_key')} = ?"


def count_slices_sql(tables: list[str]) -> str:
    """The study's rows in each table, one row (table position, count) per table, in one
    statement (a write of every form table asks for a dozen); one `?` per table."""
    return " UNION ALL ".join(
        f"SELECT {i} AS i, count(*) FROM {table_ref(t)} WHERE {quote_ident('study_key')} = ?"
        for i, t in enumerate(tables))


def preview_slice_sql(table: str, limit: int = 5) -> str:
    return f"SELECT * FROM {table_ref(table)} WHERE {quote_ident('study_key')} = ? LIMIT {limit}"


def select_slice_sql(table: str) -> str:
    return f"SELECT * FROM {table_ref(table)} WHERE {quote_ident('study_key')} = ?"


def list_tables_sql(prefix: str) -> str:
    """Tables of the sink schema whose name starts with `prefix` (LIKE wildcards escaped)."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return (
        "SELECT table_name FROM duckdb_tables() "
        f"WHERE schema_name = {quote_literal(SCHEMA)} "
        f"AND table_name LIKE {quote_literal(pattern)} ESCAPE '\\' ORDER BY table_name"
    )


def entity_select_sql(source: str) -> str:
    """A lake entity slice as it is: every column, matched by name on insert."""
    return f"SELECT * FROM {source}"


def with_mapping_sql(source: str, mapping: str, keys: Sequence[str], columns: Sequence[str]) -> str:
    """The slice plus naming-plan columns from `mapping`, joined on `keys` (one match per row)."""
    on = " AND ".join(f"m.{quote_ident(k)} IS NOT DISTINCT FROM s.{quote_ident(k)}" for k in keys)
    extra = ", ".join(f"m.{quote_ident(c)}" for c in columns)
    return f"SELECT s.*, {extra} FROM {source} AS s LEFT JOIN {quote_ident(mapping)} AS m ON {on}"


def typed_value_sql(value_sql: str, column_type: str) -> str:
    """Raw API text -> typed value; anything that does not parse becomes NULL (raw text is kept)."""
    if column_type == "BOOLEAN":
        # CHECKBOX answers are 'true'/'false'; blanks and anything else stay NULL.
        low = f"lower(trim({value_sql}))"
        return f"CASE {low} WHEN 'true' THEN true WHEN 'false' THEN false END"
    if column_type == "VARCHAR":
        return value_sql
    return f"TRY_CAST({value_sql} AS {column_type})"


def wide_select_sql(
    source: str,
    form_key: str,
    columns: Sequence[VariableColumn],
    text_columns: Iterable[str] = (),
) -> str:
    """One row per record of `form_key`: meta columns, then one typed (+ raw) column per variable.

    `text_columns` are columns the table already holds as VARCHAR (widened by a type clash between
    studies): they get the raw text, so a widened column never shows a cast artefact like `128.0`.
    """
    text = {c.lower() for c in text_columns}
    parts = [quote_ident(c) for c in META_COLUMNS]
    for col in columns:
        value = f"{quote_ident('record_data')}[{quote_literal(col.variable_name)}]"
        ctype = "VARCHAR" if col.column_name.lower() in text else col.column_type
        parts.append(f"{typed_value_sql(value, ctype)} AS {quote_ident(col.column_name)}")
        if col.raw_column_name is not None:
            parts.append(f"{value} AS {quote_ident(col.raw_column_name)}")
    return (
        f"SELECT {', '.join(parts)} FROM {source} "
        f"WHERE {quote_ident('form_key')} = {quote_literal(form_key)}"
    )


def long_select_sql(source: str, dictionary: str) -> str:
    """One row per record x recordData entry, with label and type where the key is a variable.

    Housekeeping keys (dateCreated, dateModified, unvnum, ...) are kept, like the SDK's long export,
    with NULL label/type and `is_variable = false`.
    """
    q = quote_ident
    inner_cols = ", ".join(
        q(c)
        for c in (
            "study_key",
            "record_id",
            "form_key",
            "subject_key",
            "visit_id",
            "parent_record_id",
            "deleted",
            "date_modified",
        )
    )
    entry = f"r.{q('entry')}"
    return (
        f"SELECT r.{q('study_key')}, r.{q('record_id')}, r.{q('form_key')}, r.{q('subject_key')}, "
        f"r.{q('visit_id')}, {entry}.{q('key')} AS {q('variable_name')}, "
        f"{entry}.{q('value')} AS {q('value')}, d.{q('dict_label')} AS {q('label')}, "
        f"d.{q('dict_variable_type')} AS {q('variable_type')}, "
        f"d.{q('variable_name')} IS NOT NULL AS {q('is_variable')}, "
        f"r.{q('parent_record_id')}, r.{q('deleted')}, r.{q('date_modified')} "
        f"FROM (SELECT {inner_cols}, unnest(map_entries({q('record_data')})) AS {q('entry')} "
        f"FROM {source}) AS r "
        f"LEFT JOIN {q(dictionary)} AS d ON d.{q('form_key')} = r.{q('form_key')} "
        f"AND d.{q('variable_name')} = {entry}.{q('key')}"
    )


# -- incremental changes and sync state -------------------------------------------------------

#: The sync state lives in a schema of its own, out of the way of the data tables.
SYNC_SCHEMA = "imednet_sync"
SYNC_STATE_TABLE = "sync_state"
CHANGED_KEYS = "_imednet_changed_keys"
#: The keyed entity's lake rows as a write's selects read them: all of them (a view), or in an
#: incremental apply only the changed keys' rows (a temporary table, read from the lake once).
KEYED_ROWS = "_imednet_keyed_rows"


def sync_state_ref() -> str:
    return f"{quote_ident(SYNC_SCHEMA)}.{quote_ident(SYNC_STATE_TABLE)}"


def delete_keys_sql(table: str, key: str) -> str:
    """Delete the study's rows whose `key` is in the registered changed-keys relation."""
    return (
        f"DELETE FROM {table_ref(table)} WHERE {quote_ident('study_key')} = ? AND "
        f"{quote_ident(key)} IN (SELECT {quote_ident('key')} FROM {quote_ident(CHANGED_KEYS)})"
    )


def keyed_rows_sql(source: str, key: str | None) -> str:
    """(Re)define `KEYED_ROWS` over `source`: every row, or (`key` given) the changed keys' rows."""
    if key is None:
        return f"CREATE OR REPLACE TEMP VIEW {quote_ident(KEYED_ROWS)} AS SELECT * FROM {source}"
    return (
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(KEYED_ROWS)} AS SELECT * FROM {source} "
        f"WHERE {quote_ident(key)} IN (SELECT {quote_ident('key')} FROM "
        f"{quote_ident(CHANGED_KEYS)})"
    )


def drop_keyed_rows_sql(key: str | None) -> str:
    kind = "VIEW" if key is None else "TABLE"
    return f"DROP {kind} IF EXISTS {quote_ident(KEYED_ROWS)}"


def only_keys_sql(select_sql: str, key: str) -> str:
    """`select_sql` narrowed to the rows of the changed keys."""
    return (
        f"SELECT * FROM ({select_sql}) WHERE {quote_ident(key)} IN "
        f"(SELECT {quote_ident('key')} FROM {quote_ident(CHANGED_KEYS)})"
    )


def create_sync_state_sql() -> str:
    return (
        f"CREATE SCHEMA IF NOT EXISTS {quote_ident(SYNC_SCHEMA)}; "
        f"CREATE TABLE IF NOT EXISTS {sync_state_ref()} ("
        "asset VARCHAR NOT NULL, study_key VARCHAR NOT NULL, entity VARCHAR NOT NULL, "
        "lake_token VARCHAR NOT NULL)"
    )


#: reading and clearing an asset's sync state for a study (column names are plain lower case)
SYNC_STATE = SyncStateSql(sync_state_ref(), str, "?")


def insert_sync_state_sql() -> str:
    return f"INSERT INTO {sync_state_ref()} VALUES (?, ?, ?, ?)"
