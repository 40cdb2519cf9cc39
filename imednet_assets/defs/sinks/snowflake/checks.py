"""`snowflake/form_tables` `every_record_once`: every lake record of the study (deleted ones
included, kept flagged like in DuckDB) is exactly one row of the Snowflake FORM_* tables."""

from collections.abc import Sequence
from typing import Any

from imednet_assets.defs.checks._support import SAMPLE
from imednet_assets.defs.sinks.destination import (
    FormTablesVerdict,
    RecordCheck,
    RecordTally,
    masked,
    reading,
)
from imednet_assets.defs.sinks.snowflake import sql
from imednet_assets.defs.sinks.snowflake.assets import SINK
from imednet_assets.defs.sinks.snowflake.resources import SnowflakeConnection

RECORD_ID = "RECORD_ID"


def study_rows_sql(tables: Sequence[str]) -> str:
    """(TABLE_NAME, RECORD_ID) of the study's rows in every table; the study is `%(study)s`."""
    study, record_id = sql.quote_ident(sql.STUDY_COLUMN), sql.quote_ident(RECORD_ID)
    return " UNION ALL ".join(
        f"SELECT {sql.quote_literal(t)} AS TABLE_NAME, {record_id} AS RECORD_ID "
        f"FROM {sql.quote_ident(t)} WHERE {study} = %(study)s"
        for t in tables
    )


def rows_by_table_sql(rows: str) -> str:
    return f"SELECT TABLE_NAME, COUNT(*) FROM ({rows}) GROUP BY TABLE_NAME"


def duplicates_sql(rows: str, limit: int | None = None) -> str:
    """Record ids in more than one row with their row counts (the first `limit`, by id)."""
    text = f"SELECT RECORD_ID, COUNT(*) FROM ({rows}) GROUP BY RECORD_ID HAVING COUNT(*) > 1"
    return text if limit is None else f"{text} ORDER BY RECORD_ID LIMIT {int(limit)}"


def _fetch(conn: Any, text: str, params: dict[str, str] | None = None) -> list[tuple]:
    cursor = conn.cursor()
    try:
        cursor.execute(text, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def read_records(snowflake: SnowflakeConnection, study: str, expected: int) -> RecordTally:
    """The study's rows in the FORM_* tables: per table, record ids held twice, and (only when
    the rows are not `expected`) every record id held."""
    params = {"study": study}
    where = snowflake.describe()
    conn = None
    # connector errors of every kind: say where, no secrets
    with reading(where, (Exception,), masked(snowflake.secrets())):
        try:
            with snowflake.get_connection() as conn:
                tables = [t for (t,) in _fetch(conn, sql.list_tables_sql())
                          if t.startswith(sql.FORM_TABLE_PREFIX)]
                if not tables:
                    return RecordTally(where, 0, [] if expected else None)
                rows = study_rows_sql(tables)
                by_table = {t: int(n) for t, n in _fetch(conn, rows_by_table_sql(rows), params)}
                [(dupe_ids,)] = _fetch(conn, f"SELECT COUNT(*) FROM ({duplicates_sql(rows)})",
                                       params)
                dupes = [(int(r), int(n))
                         for r, n in _fetch(conn, duplicates_sql(rows, SAMPLE), params)]
                count = sum(by_table.values())
                ids = None if count == expected else [
                    int(r) for (_, r) in _fetch(conn, rows, params)]
                return RecordTally(where, count, ids, by_table, int(dupe_ids), dupes)
        finally:
            if conn is not None:
                conn.close()  # the resource closes it on success only


RECORD_CHECK = RecordCheck(
    "form_tables",
    "Every lake record of the study (deleted ones included) is exactly one row of the Snowflake "
    "FORM_* tables: the row count over them equals the lake's records, and RECORD_ID is unique "
    "across them.",
    "snowflake",
    SnowflakeConnection,
    read_records,
    FormTablesVerdict("snowflake_rows", "FORM_*"),
)

snowflake_every_record_once = SINK.record_check(RECORD_CHECK)
