"""`snowflake/form_tables` `every_record_once`: every lake record of the study (deleted ones
included, kept flagged like in DuckDB) is exactly one row of the Snowflake FORM_* tables."""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from imednet_assets.defs.checks._support import (
    SAMPLE,
    form_tables_verdict,
    id_samples,
    lake_record_ids,
    study_check,
    study_of,
)
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.common import error_detail
from imednet_assets.defs.sinks.lake_inputs import lake_in
from imednet_assets.defs.sinks.snowflake import sql
from imednet_assets.defs.sinks.snowflake.assets import POOL
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


@study_check(
    ["snowflake", "form_tables"],
    "every_record_once",
    "Every lake record of the study (deleted ones included) is exactly one row of the Snowflake "
    "FORM_* tables: the row count over them equals the lake's records, and RECORD_ID is unique "
    "across them.",
    additional_ins={"records": lake_in("records")},
    pool=POOL,
)
def snowflake_every_record_once(
    context: dg.AssetCheckExecutionContext, records: LakeSlice, snowflake: SnowflakeConnection
) -> dg.AssetCheckResult:
    study = study_of(context)
    lake_rows = records.num_rows
    where = snowflake.describe()
    params = {"study": study}
    by_table: dict[str, int] = {}
    dupes: list[tuple[int, int]] = []
    dupe_ids = 0
    found: list[int] = []
    conn = None
    try:
        with snowflake.get_connection() as conn:
            tables = [t for (t,) in _fetch(conn, sql.list_tables_sql())
                      if t.startswith(sql.FORM_TABLE_PREFIX)]
            if tables:
                rows = study_rows_sql(tables)
                by_table = {t: int(n) for t, n in _fetch(conn, rows_by_table_sql(rows), params)}
                [(dupe_ids,)] = _fetch(conn, f"SELECT COUNT(*) FROM ({duplicates_sql(rows)})",
                                       params)
                dupes = [(int(r), int(n))
                         for r, n in _fetch(conn, duplicates_sql(rows, SAMPLE), params)]
                if sum(by_table.values()) != lake_rows:
                    found = [int(r) for (_, r) in _fetch(conn, rows, params)]
    except Exception as err:  # noqa: BLE001 - connector errors of every kind: say where, no secrets
        detail = error_detail(err, snowflake.secrets(), 300)
        raise dg.Failure(
            description=f"every_record_once for study {study}: reading {where} failed: {detail}"
        ) from None
    finally:
        if conn is not None:
            conn.close()  # the resource closes it on success only
    samples = {"missing_sample": [], "unexpected_sample": []}
    if sum(by_table.values()) != lake_rows:
        samples = id_samples(lake_record_ids(records), found)
    return form_tables_verdict(
        study,
        lake_rows=lake_rows,
        by_table=by_table,
        duplicate_ids=dupe_ids,
        duplicates_sample=[{"record_id": r, "rows": n} for r, n in dupes],
        count_key="snowflake_rows",
        tables="FORM_*",
        destination=where,
        **samples,
    )
