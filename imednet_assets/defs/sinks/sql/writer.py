"""Replays one study's slice of a group of tables in ONE transaction: sync schema, delete, load.

`BEGIN; (create tables / add columns / widen clashing columns to text); DELETE the study's rows;
COPY (PostgreSQL) or INSERT (other dialects) the study's rows; COMMIT`, ROLLBACK on any error,
so a replay leaves every table exactly as one clean run would, and a failed one leaves it as it
was. DDL is transactional in PostgreSQL and SQLite; on MySQL it commits implicitly (tables and
columns may stay, rows are still all-or-nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import sqlalchemy as sa

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.duckdb.naming import shorten
from imednet_assets.defs.sinks.sql import ddl, loader
from imednet_assets.defs.sinks.tabular import StudyTables, TableSpec

# lower(name) -> (name, reflected type, comment)
Columns = dict[str, tuple[str, sa.types.TypeEngine, str | None]]


@dataclass(frozen=True)
class SqlStudyWrite:
    """What one asset writes for one study: the tables of `StudyTables` that `wants`.

    `stale_prefix`: this study's rows are also deleted from every other table with this prefix
    (a form removed from the study must not leave its old rows behind).
    """

    asset_name: str
    study_key: str
    slices: Mapping[str, LakeSlice]
    wants: Callable[[TableSpec], bool]
    stale_prefix: str | None = None


@dataclass
class WriteResult:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows written for the study
    deleted: int = 0
    batches: int = 0
    seconds: float = 0.0


class SqlWriteFailed(Exception):
    """A statement of the write failed; says where (table, batch). `transient`: worth a retry."""

    def __init__(self, where: str, detail: str, *, transient: bool) -> None:
        super().__init__(f"{where}: {detail}")
        self.transient = transient


def _before_load(conn: sa.Connection, table: str) -> None:
    """Seam between DELETE and load (tests inject a failure here); does nothing."""


def table_columns(conn: sa.Connection, schema: str | None, table: str) -> Columns:
    """The table's columns by lower-cased name; empty when the table does not exist."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(table, schema=schema):
        return {}
    return {
        c["name"].lower(): (c["name"], c["type"], c.get("comment"))
        for c in inspector.get_columns(table, schema=schema)
    }


def _raw_columns(spec: TableSpec) -> dict[str, str]:
    """raw column -> the typed column it keeps the API text of (form tables)."""
    if spec.form is None:
        return {}
    return {c.raw_column_name: c.column_name for c in spec.form.columns if c.raw_column_name}


def sync_schema(
    conn: sa.Connection, schema: str | None, spec: TableSpec, wanted: pa.Schema
) -> list[str]:
    """Create the table, add new columns, widen clashing types to text. Never drops anything.

    Returns the typed columns of `spec` the table holds as text (they must get the raw text).
    """
    dialect = conn.dialect
    table = spec.name
    raws = _raw_columns(spec)
    comments = dialect.supports_comments

    def mark(column: str) -> None:
        if comments and column in raws:
            conn.execute(sa.text(ddl.comment_column_sql(
                dialect, schema, table, column, ddl.raw_comment(raws[column]))))

    existing = table_columns(conn, schema, table)
    columns = [(f.name, ddl.sql_type(f.type)) for f in wanted]
    if not existing:
        conn.execute(sa.text(ddl.create_table_sql(dialect, schema, table, columns)))
        index = shorten(f"ix_{table}_study_key", dialect.max_identifier_length)
        conn.execute(sa.text(ddl.study_index_sql(dialect, schema, table, index)))
        for name, _ in columns:
            mark(name)
        return []
    restores: list[tuple[str, str]] = []
    for name, ctype in columns:
        have = existing.get(name.lower())
        if have is None:
            conn.execute(sa.text(ddl.add_column_sql(dialect, schema, table, name, ctype)))
            mark(name)
            continue
        have_family, want_family = ddl.family(have[1]), ddl.family(ctype)
        if have_family in (want_family, ddl.TEXT, "other"):
            continue
        # Same column, different types in different studies: text holds both losslessly.
        conn.execute(sa.text(ddl.widen_column_sql(dialect, schema, table, have[0])))
        marker = ddl.raw_comment(have[0])
        restores += [(have[0], col) for col, _, comment in existing.values() if comment == marker]
    for column, raw in restores:
        conn.execute(sa.text(ddl.restore_raw_sql(dialect, schema, table, column, raw)))
    now = table_columns(conn, schema, table)
    if spec.form is None:
        return []
    return [
        c.column_name
        for c in spec.form.columns
        if c.column_type != "VARCHAR" and ddl.family(now[c.column_name.lower()][1]) == ddl.TEXT
    ]


def _stale_tables(conn: sa.Connection, schema: str | None, prefix: str, mine: set[str]):
    inspector = sa.inspect(conn)
    for name in sorted(inspector.get_table_names(schema=schema)):
        if name.startswith(prefix) and name.lower() not in mine:
            cols = {c["name"] for c in inspector.get_columns(name, schema=schema)}
            if ddl.STUDY_COLUMN in cols:
                yield name


Load = Callable[
    [sa.Connection, str | None, str, pa.RecordBatchReader, loader.LoadProgress], None
]


def bulk_load(
    conn: sa.Connection,
    schema: str | None,
    table: str,
    reader: pa.RecordBatchReader,
    progress: loader.LoadProgress,
) -> None:
    """COPY on PostgreSQL through psycopg, batched executemany elsewhere."""
    if loader.supports_copy(conn):
        loader.copy_batches(conn, schema, table, reader, progress)
        return
    columns = [(f.name, ddl.sql_type(f.type)) for f in reader.schema]
    loader.insert_batches(conn, ddl.table_object(schema, table, columns), reader, progress)


def _failed(exc: BaseException, progress: loader.LoadProgress) -> SqlWriteFailed:
    orig = getattr(exc, "orig", None)
    shown = orig if isinstance(orig, BaseException) else exc
    # SQLAlchemy appends the statement and bound values (100 kB answers): keep the message only
    text = str(shown).split("\n[SQL:")[0].strip()
    transient = isinstance(exc, sa.exc.OperationalError | psycopg.OperationalError)
    where = f"table {progress.table}, batch {progress.batch}"
    return SqlWriteFailed(where, f"{type(shown).__name__}: {text}", transient=transient)


def write_study(
    engine: sa.Engine,
    write: SqlStudyWrite,
    *,
    schema: str | None,
    batch_rows: int,
    load: Load = bulk_load,
) -> WriteResult:
    """Replay `write` in one transaction; raises `SqlWriteFailed` (after ROLLBACK) on error.

    `load` puts one table's rows in (the benchmark swaps in slower ways to compare)."""
    started = time.perf_counter()
    result = WriteResult()
    progress = loader.LoadProgress()
    limit = engine.dialect.max_identifier_length
    try:
        with (
            StudyTables(write.study_key, write.slices, max_identifier_length=limit) as tables,
            engine.begin() as conn,  # COMMIT on success, ROLLBACK on any exception
        ):
            specs = [s for s in tables.specs() if write.wants(s)]
            text_columns: dict[str, list[str]] = {}
            for spec in specs:
                progress.table = spec.name
                text_columns[spec.name] = sync_schema(conn, schema, spec, tables.schema(spec))
            if write.stale_prefix is not None:
                mine = {s.name.lower() for s in specs}
                for other in _stale_tables(conn, schema, write.stale_prefix, mine):
                    progress.table = other
                    gone = conn.execute(
                        sa.text(ddl.delete_slice_sql(conn.dialect, schema, other)),
                        {"study": write.study_key},
                    )
                    result.deleted += max(gone.rowcount, 0)
            for spec in specs:
                progress.table, progress.batch, progress.rows = spec.name, 0, 0
                gone = conn.execute(
                    sa.text(ddl.delete_slice_sql(conn.dialect, schema, spec.name)),
                    {"study": write.study_key},
                )
                result.deleted += max(gone.rowcount, 0)
                _before_load(conn, spec.name)
                reader = tables.read(
                    spec, text_columns=text_columns[spec.name], batch_rows=batch_rows
                )
                load(conn, schema, spec.name, reader, progress)
                reader.close()  # a load that stopped early must not block the next read
                result.rows[spec.name] = progress.rows
                result.batches += progress.batch
            progress.table, progress.batch = "(commit)", 0
    except ddl.WideningUnsupported as exc:
        raise SqlWriteFailed(f"table {progress.table}", str(exc), transient=False) from None
    except (sa.exc.SQLAlchemyError, psycopg.Error) as exc:
        raise _failed(exc, progress) from None
    result.seconds = time.perf_counter() - started
    return result

