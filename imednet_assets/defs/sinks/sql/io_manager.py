"""SQL sink IO manager: checks the database answers, then brings the study's tables to the lake's
state in one transaction (skip, apply the changed keys, or rewrite; see `writer`).

The whole study write is the retry unit (it is one transaction, so a retry after a dropped
connection or a deadlock starts from the previous committed state). Errors become `dg.Failure`s
naming destination (redacted), asset, study, table and batch, so the partition is not marked
materialized and no stack trace or password reaches the UI.
"""

from __future__ import annotations

from typing import ClassVar

import dagster as dg
import pyarrow as pa
import sqlalchemy as sa

from imednet_assets.defs.sinks.changes import REWRITE, ChangePlan
from imednet_assets.defs.sinks.common import (
    DestinationConfigError,
    DestinationError,
    with_retries,
)
from imednet_assets.defs.sinks.destination import DestinationIOManager, WriteReport
from imednet_assets.defs.sinks.sql import ddl
from imednet_assets.defs.sinks.sql.resources import SqlDestination
from imednet_assets.defs.sinks.sql.writer import (
    SqlStudyWrite,
    SqlWriteFailed,
    WriteResult,
    write_study,
)
from imednet_assets.settings import redact

#: asset name -> its tables (form_tables: every `form_*` table of the study).
TABLES_BY_ASSET: dict[str, tuple[str, ...]] = {
    "subjects": ("subjects",),
    "visits": ("visits",),
    "dictionary": ("forms", "variables"),
    "records_long": ("records_long",),
}


class TransientSqlError(Exception):
    """A write failure worth retrying (connection lost, deadlock, serialization)."""


def run_write(destination: SqlDestination, write: SqlStudyWrite, log=None) -> WriteResult:
    """Check the destination, then replay `write` with retries; raises `DestinationError`."""
    what = (
        f"SQL write of {write.asset_name} for study {write.study_key} "
        f"({destination.describe()})"
    )
    with destination.open() as engine:  # DestinationConfigError before any data moves

        def attempt() -> WriteResult:
            try:
                return write_study(
                    engine, write, schema=destination.db_schema,
                    batch_rows=destination.batch_size,
                )  # fmt: skip
            except SqlWriteFailed as exc:
                if exc.transient:
                    raise TransientSqlError(str(exc)) from None
                detail = redact(str(exc), destination.secrets())[:500]
                raise DestinationError(f"{what} failed: {detail}") from None

        def on_retry(n: int, exc: BaseException) -> None:
            if log is not None:
                log.warning(f"{what}: retry {n} after {redact(str(exc))[:300]}")

        return with_retries(
            attempt,
            settings=destination,
            transient=(TransientSqlError,),
            what=what,
            secrets=destination.secrets(),
            on_retry=on_retry,
        )


class SqlSinkIOManager(DestinationIOManager):
    """Writes a `SqlStudyWrite` for the run's study partition; loads the study's rows back."""

    label: ClassVar[str] = "SQL sink"
    write_type: ClassVar[type] = SqlStudyWrite

    destination: SqlDestination

    def write_output(self, context: dg.OutputContext, obj: SqlStudyWrite) -> WriteReport:
        result = run_write(self.destination, obj, context.log)
        schema = self.destination.db_schema
        tables = sorted(result.rows)
        prefix = f"{schema}." if schema else ""
        # the form tables are one asset: `<schema>.form_*`
        table = tables[0] if obj.stale_prefix is None else f"{obj.stale_prefix}*"
        return WriteReport(
            result.rows,
            result.plan or ChangePlan(REWRITE, {}, ""),
            inserted=result.inserted,
            deleted=result.deleted,
            table_name=f"{prefix}{table}",
            extra={
                "destination": self.destination.address,
                "tables": dg.MetadataValue.json({t: result.rows[t] for t in tables}),
                "batches": result.batches,
                "seconds": round(result.seconds, 3),
            },
            columns=result.columns,
            descriptions=result.descriptions,
        )

    def load_input(self, context: dg.InputContext) -> dict[str, pa.Table]:
        """The study's rows of the upstream asset's tables, table name -> Arrow table."""
        study = context.partition_key
        upstream = context.upstream_output
        name = upstream.asset_key.path[-1] if upstream and upstream.asset_key else "?"
        try:
            with self.destination.open() as engine, engine.connect() as conn:
                names = sa.inspect(conn).get_table_names(schema=self.destination.db_schema)
                wanted = _tables_of(name, names)
                out = {}
                for table in wanted:
                    text = ddl.select_slice_sql(conn.dialect, self.destination.db_schema, table)
                    rows = conn.execute(sa.text(text), {"study": study}).mappings().all()
                    out[table] = pa.Table.from_pylist([dict(r) for r in rows])
                return out
        except DestinationConfigError as err:
            raise dg.Failure(description=str(err)) from None
        except sa.exc.SQLAlchemyError as err:
            raise dg.Failure(
                description=f"SQL read of {name} for study {study} failed "
                f"({self.destination.describe()}): {self.destination.clean(err)}"
            ) from None


def _tables_of(asset_name: str, tables: list[str]) -> list[str]:
    """The tables an asset writes, of those that exist."""
    fixed = TABLES_BY_ASSET.get(asset_name)
    if fixed is not None:
        return [t for t in fixed if t in tables]
    return sorted(t for t in tables if t.startswith(ddl.FORM_TABLE_PREFIX))
