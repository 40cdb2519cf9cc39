"""Keys and references inside DuckDB, per study.

- Unique keys (ERROR): `subjects.subject_id`, `visits.visit_id`, `variables.variable_id`,
  `sites.site_id`; a NULL key counts as a problem too.
- References (WARN: the EDC itself may hold them, e.g. a purged parent record):
  every visit's `subject_id` is a subject, every record's `subject_key` (records_long) is a
  subject, every child record's `parent_record_id` (not 0/NULL) is a record of the study.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from imednet_assets.defs.checks._support import (
    ERROR,
    SAMPLE,
    WARN,
    duckdb_reader,
    form_rows_sql,
    form_tables,
    result,
    study_check,
    study_of,
    study_rows_sql,
)
from imednet_assets.defs.sinks.duckdb import sql

# table -> key column
UNIQUE_KEYS: dict[str, str] = {
    "subjects": "subject_id",
    "visits": "visit_id",
    "variables": "variable_id",
    "sites": "site_id",
}
_SUBJECTS = dg.AssetKey(["duckdb", "subjects"])


def _unique_key(table: str, column: str) -> dg.AssetChecksDefinition:
    @study_check(
        ["duckdb", table],
        f"unique_{column}",
        f"{table}.{column} is unique and not NULL within the study.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
    ) -> dg.AssetCheckResult:
        study = study_of(context)
        col = sql.quote_ident(column)
        params = {"study": study}
        with duckdb_reader(duckdb, f"unique_{column} for study {study}") as conn:
            rows, distinct, nulls = conn.execute(
                study_rows_sql(
                    table, f"count(*), count(DISTINCT {col}), count(*) FILTER ({col} IS NULL)"
                ),
                params,
            ).fetchone() or (0, 0, 0)
            keyed = study_rows_sql(table, col)
            sample = conn.execute(
                f"SELECT {col}, count(*) FROM ({keyed}) WHERE {col} IS NOT NULL "
                f"GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT {SAMPLE}",
                params,
            ).fetchall()
        extra = rows - nulls - distinct  # rows beyond the first of each key
        problems = []
        if extra:
            problems.append(f"{extra} extra row(s) repeat a {column}")
        if nulls:
            problems.append(f"{nulls} row(s) have no {column}")
        return result(
            not problems,
            ERROR,
            f"study {study}: {table} " + ("; ".join(problems) if problems else
                                          f"holds {rows} rows, one per {column}"),
            study=study,
            table=table,
            rows=int(rows),
            distinct_keys=int(distinct),
            duplicate_rows=int(extra),
            null_keys=int(nulls),
            duplicates_sample=[{column: key, "rows": n} for key, n in sample],
        )

    return _check


unique_key_checks = [_unique_key(table, column) for table, column in UNIQUE_KEYS.items()]


@study_check(
    ["duckdb", "visits"],
    "visit_subjects_exist",
    "Every visit's subject_id is a subject of the study (WARN).",
    additional_deps=[_SUBJECTS],
)
def visit_subjects_exist(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    study = study_of(context)
    params = {"study": study}
    subjects = study_rows_sql("subjects", "subject_id") + " AND subject_id IS NOT NULL"
    orphans = (
        f"FROM ({study_rows_sql('visits', 'visit_id, subject_id')}) AS v "
        f"WHERE v.subject_id IS NULL OR v.subject_id NOT IN ({subjects})"
    )
    with duckdb_reader(duckdb, f"visit_subjects_exist for study {study}") as conn:
        (visits,) = conn.execute(study_rows_sql("visits", "count(*)"), params).fetchone() or (0,)
        (orphan_visits, orphan_subjects) = conn.execute(
            f"SELECT count(*), count(DISTINCT v.subject_id) {orphans}", params
        ).fetchone() or (0, 0)
        sample = [s for (s,) in conn.execute(
            f"SELECT DISTINCT v.subject_id {orphans} ORDER BY 1 NULLS FIRST LIMIT {SAMPLE}",
            params,
        ).fetchall()]
    passed = orphan_visits == 0
    return result(
        passed,
        WARN,
        f"study {study}: "
        + (f"all {visits} visits belong to a subject in subjects" if passed else
           f"{orphan_visits} of {visits} visits name a subject_id not in subjects"),
        study=study,
        table="visits",
        visits=int(visits),
        orphan_visits=int(orphan_visits),
        missing_subject_ids=int(orphan_subjects),
        missing_sample=sample,
    )


@study_check(
    ["duckdb", "records_long"],
    "record_subjects_exist",
    "Every record in records_long belongs to a subject_key of the study's subjects (WARN).",
    additional_deps=[_SUBJECTS],
)
def record_subjects_exist(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    study = study_of(context)
    params = {"study": study}
    records = study_rows_sql("records_long", "DISTINCT record_id, subject_key")
    subjects = study_rows_sql("subjects", "subject_key") + " AND subject_key IS NOT NULL"
    orphans = (
        f"FROM ({records}) AS r "
        f"WHERE r.subject_key IS NULL OR r.subject_key NOT IN ({subjects})"
    )
    with duckdb_reader(duckdb, f"record_subjects_exist for study {study}") as conn:
        (total,) = conn.execute(f"SELECT count(*) FROM ({records})", params).fetchone() or (0,)
        (orphan_records, orphan_keys) = conn.execute(
            f"SELECT count(*), count(DISTINCT r.subject_key) {orphans}", params
        ).fetchone() or (0, 0)
        sample = [s for (s,) in conn.execute(
            f"SELECT DISTINCT r.subject_key {orphans} ORDER BY 1 NULLS FIRST LIMIT {SAMPLE}",
            params,
        ).fetchall()]
    passed = orphan_records == 0
    return result(
        passed,
        WARN,
        f"study {study}: "
        + (f"all {total} records in records_long belong to a subject in subjects" if passed else
           f"{orphan_records} of {total} records in records_long name a subject_key not in "
           "subjects"),
        study=study,
        table="records_long",
        records=int(total),
        orphan_records=int(orphan_records),
        missing_subject_keys=int(orphan_keys),
        missing_sample=sample,
    )


@study_check(
    ["duckdb", "form_tables"],
    "parent_records_exist",
    "Every child record's parent_record_id (not 0/NULL) is a record of the study in the form "
    "tables (which hold every record; records_long lacks records without answers) (WARN).",
)
def parent_records_exist(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    study = study_of(context)
    params = {"study": study}
    with duckdb_reader(duckdb, f"parent_records_exist for study {study}") as conn:
        rows = form_rows_sql(form_tables(conn), ["record_id", "parent_record_id"])
        children = f"SELECT * FROM ({rows}) WHERE coalesce(parent_record_id, 0) <> 0"
        orphans = (
            f"FROM ({children}) AS c "
            f"WHERE c.parent_record_id NOT IN (SELECT record_id FROM ({rows}) "
            "WHERE record_id IS NOT NULL)"
        )
        (total,) = conn.execute(f"SELECT count(*) FROM ({children})", params).fetchone() or (0,)
        (orphan_children, missing) = conn.execute(
            f"SELECT count(*), count(DISTINCT c.parent_record_id) {orphans}", params
        ).fetchone() or (0, 0)
        sample = conn.execute(
            f"SELECT c.record_id, c.parent_record_id, c.table_name {orphans} "
            f"ORDER BY 1 LIMIT {SAMPLE}",
            params,
        ).fetchall()
    passed = orphan_children == 0
    return result(
        passed,
        WARN,
        f"study {study}: "
        + (f"all {total} child records have their parent record" if passed else
           f"{orphan_children} of {total} child records name a parent_record_id that is not a "
           "record of the study"),
        study=study,
        table="form_*",
        child_records=int(total),
        orphan_children=int(orphan_children),
        missing_parents=int(missing),
        missing_sample=[
            {"record_id": r, "parent_record_id": p, "table": t} for r, p, t in sample
        ],
    )


integrity_checks: list[dg.AssetChecksDefinition] = [
    *unique_key_checks,
    visit_subjects_exist,
    record_subjects_exist,
    parent_records_exist,
]
