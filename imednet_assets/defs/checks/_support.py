"""What every check shares: the run's study, the partitioned-check decorator, short DuckDB reads,
lake queries and result helpers.

Checks are partitioned by study like the assets they check (`partitions_def=study_partitions`,
preview in dagster 1.13 but working): a run of `imednet_all_job` for study S evaluates the checks
for partition S, the evaluations are recorded per partition, and `context.partition_key` is the
study.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import dagster as dg
import duckdb
import pyarrow.compute as pc
from dagster_duckdb import DuckDBResource

from imednet_assets.defs.execution import step_tags
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.duckdb import sql
from imednet_assets.defs.sinks.duckdb.assets import POOL as DUCKDB_POOL

CheckFn = Callable[..., dg.AssetCheckResult]
ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN
SAMPLE = 10
"""At most this many offending keys are shown in a check's metadata."""


def study_check(
    asset: Sequence[str], name: str, description: str, **kwargs: Any
) -> Callable[[CheckFn], dg.AssetChecksDefinition]:
    """`dg.asset_check` partitioned by study, non-blocking.

    Partitioned checks are a preview feature in dagster 1.13; the PreviewWarning is silenced here
    on purpose (once, where the decision is made) and the behaviour is pinned by the tests.
    """

    # on Celery, a check runs where the files it reads are (`defs/execution.py`)
    kwargs.setdefault("op_tags", step_tags(None if asset[0] == "imednet" else asset[0]))
    if asset[0] == "duckdb":
        # DuckDB lets one process hold the file: readers queue with the writers, or a check in
        # another process would wait on the lock (and give up after ~100 s) instead of checking
        kwargs.setdefault("pool", DUCKDB_POOL)

    def decorate(fn: CheckFn) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(
                asset=dg.AssetKey(list(asset)),
                name=name,
                description=description,
                blocking=False,
                partitions_def=study_partitions,
                **kwargs,
            )(each_study(fn))

    return decorate


class _OneStudy:
    """The check context as a run of one study sees it (the rest is the run's own context)."""

    def __init__(self, context: dg.AssetCheckExecutionContext, study: str) -> None:
        self._context = context
        self.partition_key = study
        self.partition_keys = [study]
        self.has_partition_key = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _only(value: Any, study: str) -> Any:
    """An input as one study sees it: its own lake slice out of the run's list."""
    if isinstance(value, list) and value and all(isinstance(v, LakeSlice) for v in value):
        return next(v for v in value if v.study_key == study)
    return value


def each_study(fn: CheckFn) -> CheckFn:
    """A check written for one study, run for each study of a run over several (a single-run
    backfill). Dagster records one evaluation for such a run, not one per partition: it passes
    when every study passes, and its metadata gives each study's verdict."""

    @functools.wraps(fn)
    def check(context: dg.AssetCheckExecutionContext, **inputs: Any) -> dg.AssetCheckResult:
        if context.has_partition_key:
            return fn(context, **inputs)
        verdicts = {
            study: fn(_OneStudy(context, study), **{k: _only(v, study) for k, v in inputs.items()})
            for study in context.partition_keys
        }
        failed = {s: v for s, v in verdicts.items() if not v.passed}
        severity = ERROR if any(v.severity == ERROR for v in failed.values()) else WARN
        summary = (f"{len(verdicts)} studies, every one passed" if not failed else
                   f"{len(failed)} of {len(verdicts)} studies failed: "
                   + "; ".join(v.description or s for s, v in sorted(failed.items())[:SAMPLE]))
        return result(not failed, severity, summary, studies=len(verdicts),
                      failed_studies=sorted(failed),
                      by_study={s: v.description for s, v in sorted(verdicts.items())})

    # Dagster binds inputs and resources by the signature; a lake input is a list of slices in
    # a run over several studies, so it is typed Any (no type check on a single LakeSlice)
    signature = inspect.signature(fn)
    check.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
        p.replace(annotation=Any) if p.annotation in (LakeSlice, "LakeSlice") else p
        for p in signature.parameters.values()])
    del check.__wrapped__  # type: ignore[attr-defined]
    return check


def study_of(context: dg.AssetCheckExecutionContext) -> str:
    """The study the check evaluates (one at a time: see `each_study`)."""
    return context.partition_key


@contextlib.contextmanager
def duckdb_reader(resource: DuckDBResource, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection for SELECTs only, closed in `finally`.

    `DuckDBResource.get_connection` retries while another process holds the file's lock, but only
    closes the connection on success, hence the `finally`. A DuckDB error becomes a `dg.Failure`
    naming `what` (check and study) and the database.
    """
    with resource.get_connection() as conn:
        try:
            yield conn
        except duckdb.Error as err:
            raise dg.Failure(
                description=f"{what}: reading DuckDB {resource.database} failed: {err}"
            ) from None
        finally:
            conn.close()


def lake_scalars(lake: LakeSlice, select: str, empty: tuple[int, ...]) -> tuple[int, ...]:
    """`select` (with `{source}` for the slice's files) on an in-memory DuckDB; `empty` when the
    slice holds no files. The sink's DuckDB file is not touched, so its lock is not held."""
    if not lake.files:
        return empty
    conn = duckdb.connect(":memory:")
    try:
        row = conn.execute(select.format(source=sql.read_parquet_sql(lake.files))).fetchone()
    finally:
        conn.close()
    assert row is not None
    return tuple(0 if v is None else int(v) for v in row)


def study_rows_sql(table: str, columns: str) -> str:
    """`SELECT <columns> FROM main.<table> WHERE study_key = $study` (study bound by name)."""
    study_key = sql.quote_ident("study_key")
    return f"SELECT {columns} FROM {sql.table_ref(table)} WHERE {study_key} = $study"


def form_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Every wide form table (`form_*`) of the database."""
    return [t for (t,) in conn.execute(sql.list_tables_sql(sql.FORM_TABLE_PREFIX)).fetchall()]


def form_rows_sql(tables: Sequence[str], columns: Sequence[str]) -> str:
    """The study's rows of every form table as one relation, with a `table_name` column."""
    cols = ", ".join(sql.quote_ident(c) for c in columns)
    parts = [study_rows_sql(t, f"{sql.quote_literal(t)} AS table_name, {cols}") for t in tables]
    if not parts:
        typed = ", ".join(f"NULL::BIGINT AS {sql.quote_ident(c)}" for c in columns)
        return f"SELECT NULL::VARCHAR AS table_name, {typed} WHERE false"
    return " UNION ALL ".join(parts)


def result(
    passed: bool, severity: dg.AssetCheckSeverity, description: str, **metadata: Any
) -> dg.AssetCheckResult:
    """An evaluation whose description and metadata name the study, the table and the counts."""
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        description=description,
        metadata={k: _meta(v) for k, v in metadata.items()},
    )


def _meta(value: Any) -> Any:
    if isinstance(value, list | dict):
        return dg.MetadataValue.json(value)
    return value


# -- lake records vs a destination (the optional destinations' `every_record_once`) ---------------


def live_records(records: LakeSlice) -> int:
    """The slice's records that are not soft-deleted (`deleted` true); NULL counts as live."""
    (live,) = lake_scalars(
        records, "SELECT count(*) FILTER (WHERE NOT coalesce(deleted, false)) FROM {source}", (0,)
    )
    return live


def lake_record_ids(records: LakeSlice, *, live_only: bool = False) -> set[int]:
    """The slice's record ids (only the live ones with `live_only`); read on a mismatch only."""
    table = records.columns(["record_id", "deleted"])
    if live_only:
        table = table.filter(pc.invert(pc.fill_null(table.column("deleted"), False)))
    return set(table.column("record_id").to_pylist())


def id_samples(lake_ids: set[int], destination_ids: Iterable[int]) -> dict[str, list[int]]:
    """Up to `SAMPLE` lake ids the destination lacks and destination ids the lake lacks."""
    found = set(destination_ids)
    return {
        "missing_sample": sorted(lake_ids - found)[:SAMPLE],
        "unexpected_sample": sorted(found - lake_ids, key=repr)[:SAMPLE],
    }


def form_tables_verdict(
    study: str,
    *,
    lake_rows: int,
    by_table: dict[str, int],
    duplicate_ids: int,
    duplicates_sample: list[dict[str, Any]],
    count_key: str,
    tables: str = "form_*",
    **metadata: Any,
) -> dg.AssetCheckResult:
    """`every_record_once` over a destination's wide form tables (DuckDB, SQL, Snowflake): the
    rows there (`by_table`) against the lake's records, and record ids found more than once.
    `count_key` names the destination's row count; `metadata` adds what the destination knows
    (its address, missing and unexpected ids)."""
    dest_rows = sum(by_table.values())
    problems = []
    if dest_rows != lake_rows:
        problems.append(f"form tables hold {dest_rows} rows, the lake {lake_rows} records")
    if duplicate_ids:
        problems.append(f"{duplicate_ids} record_id(s) occur more than once")
    return result(
        not problems,
        ERROR,
        f"study {study}: "
        + ("; ".join(problems) if problems else
           f"{lake_rows} lake records, each once in the form tables"),
        study=study,
        table=tables,
        lake_rows=lake_rows,
        **{count_key: dest_rows},
        duplicate_record_ids=int(duplicate_ids),
        duplicates_sample=duplicates_sample,
        rows_by_table={t: int(n) for t, n in sorted(by_table.items())},
        **metadata,
    )
