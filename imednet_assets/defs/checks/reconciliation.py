"""Row reconciliation: lake vs the API (WARN, the source may move), DuckDB vs the lake (ERROR).

- `imednet/{records,subjects,visits}` `lake_matches_api`: the study's lake rows = the API's
  `totalElements` (one GET, `size=1`).
- `duckdb/form_tables` `every_record_once`: every lake record is one row of one form table.
- `duckdb/records_long` `every_answer_once`: every recordData entry of the lake is one long row.
"""


import dagster as dg
from dagster_duckdb import DuckDBResource

from imednet_assets.client.sync import count_sync
from imednet_assets.defs.checks._support import (
    ERROR,
    SAMPLE,
    WARN,
    duckdb_reader,
    form_rows_sql,
    form_tables,
    form_tables_verdict,
    lake_scalars,
    result,
    study_check,
    study_of,
    study_rows_sql,
)
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.resources import ImednetResource

LAKE_API_ENTITIES = ("records", "subjects", "visits")
_RECORDS_IN = {"records": dg.AssetIn(key=["imednet", "records"])}


# -- lake vs API ------------------------------------------------------------------------------


def _lake_matches_api(entity: str) -> dg.AssetChecksDefinition:
    @study_check(
        ["imednet", entity],
        "lake_matches_api",
        f"The study's {entity} rows in the lake equal the API's totalElements (WARN: the source "
        "may have changed since the ingest).",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, lake: LakeSlice, imednet: ImednetResource
    ) -> dg.AssetCheckResult:
        study = study_of(context)
        lake_rows = lake.num_rows
        api_rows = count_sync(imednet.settings(), entity, study)
        passed = lake_rows == api_rows
        verdict = "matches" if passed else f"differs by {lake_rows - api_rows:+d} from"
        return result(
            passed,
            WARN,
            f"study {study}: lake {entity} holds {lake_rows} rows, {verdict} the API's "
            f"{api_rows}",
            study=study,
            entity=entity,
            lake_rows=lake_rows,
            api_rows=api_rows,
        )

    return _check


lake_matches_api_checks = [_lake_matches_api(entity) for entity in LAKE_API_ENTITIES]


# -- DuckDB vs lake ---------------------------------------------------------------------------


@study_check(
    ["duckdb", "form_tables"],
    "every_record_once",
    "Every lake record of the study is exactly one row of the form tables: the row count over "
    "all form_* tables equals the lake's records, and record_id is unique across them.",
    additional_ins=_RECORDS_IN,
)
def every_record_once(
    context: dg.AssetCheckExecutionContext, records: LakeSlice, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    study = study_of(context)
    lake_rows = records.num_rows
    with duckdb_reader(duckdb, f"every_record_once for study {study}") as conn:
        tables = form_tables(conn)
        rows = form_rows_sql(tables, ["record_id"])
        params = {"study": study}
        by_table = dict(
            conn.execute(
                f"SELECT table_name, count(*) FROM ({rows}) GROUP BY 1 ORDER BY 1", params
            ).fetchall()
        )
        dupes = f"SELECT record_id FROM ({rows}) GROUP BY 1 HAVING count(*) > 1"
        (dupe_ids,) = conn.execute(f"SELECT count(*) FROM ({dupes})", params).fetchone() or (0,)
        sample = conn.execute(
            f"SELECT record_id, count(*), list(table_name ORDER BY table_name) FROM ({rows}) "
            f"GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 NULLS FIRST LIMIT {SAMPLE}",
            params,
        ).fetchall()
    return form_tables_verdict(
        study,
        lake_rows=lake_rows,
        by_table=by_table,
        duplicate_ids=dupe_ids,
        duplicates_sample=[
            {"record_id": rid, "rows": n, "tables": list(names)} for rid, n, names in sample
        ],
        count_key="duckdb_rows",
    )


@study_check(
    ["duckdb", "records_long"],
    "every_answer_once",
    "Every recordData entry of the study's lake records is exactly one records_long row: the row "
    "count equals sum(cardinality(record_data)) and (record_id, variable_name) is unique.",
    additional_ins=_RECORDS_IN,
)
def every_answer_once(
    context: dg.AssetCheckExecutionContext, records: LakeSlice, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    study = study_of(context)
    (lake_answers,) = lake_scalars(
        records, "SELECT sum(cardinality(record_data)) FROM {source}", (0,)
    )
    params = {"study": study}
    with duckdb_reader(duckdb, f"every_answer_once for study {study}") as conn:
        (duckdb_rows,) = conn.execute(
            study_rows_sql("records_long", "count(*)"), params
        ).fetchone() or (0,)
        keyed = study_rows_sql("records_long", "record_id, variable_name")
        dupes = f"FROM ({keyed}) GROUP BY record_id, variable_name HAVING count(*) > 1"
        (dupe_keys,) = conn.execute(
            f"SELECT count(*) FROM (SELECT 1 {dupes})", params
        ).fetchone() or (0,)
        sample = conn.execute(
            f"SELECT record_id, variable_name, count(*) {dupes} ORDER BY 1, 2 LIMIT {SAMPLE}",
            params,
        ).fetchall()
    problems = []
    if duckdb_rows != lake_answers:
        problems.append(
            f"records_long holds {duckdb_rows} rows, the lake {lake_answers} recordData entries"
        )
    if dupe_keys:
        problems.append(f"{dupe_keys} (record_id, variable_name) pair(s) occur more than once")
    return result(
        not problems,
        ERROR,
        f"study {study}: " + ("; ".join(problems) if problems else
                              f"{lake_answers} recordData entries, each once in records_long"),
        study=study,
        table="records_long",
        lake_answers=lake_answers,
        duckdb_rows=int(duckdb_rows),
        duplicate_keys=int(dupe_keys),
        duplicates_sample=[
            {"record_id": rid, "variable_name": name, "rows": n} for rid, name, n in sample
        ],
    )


reconciliation_checks: list[dg.AssetChecksDefinition] = [
    *lake_matches_api_checks,
    every_record_once,
    every_answer_once,
]
