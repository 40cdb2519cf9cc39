"""DuckDB sink IO manager: replays one study's slice of one or more tables in a single transaction.

Why not dagster-duckdb's IO manager: it inserts by column position, deletes outside a transaction
and keeps the file lock after a failed write. Here: `BEGIN; (create/add/widen columns);
DELETE slice; INSERT ... BY NAME SELECT ...; COMMIT`, ROLLBACK on any error, and the connection
is closed in `finally` (`DuckDBResource.get_connection` only closes it on success). A step's
outputs share one connection (`step_session`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import APPLY, SKIP, ChangePlan, plan_changes
from imednet_assets.defs.sinks.common import DestinationError
from imednet_assets.defs.sinks.destination import DestinationIOManager, WriteReport
from imednet_assets.defs.sinks.duckdb import sql

# Table column types as DuckDB spells them, keyed by lower-cased column name.
ColumnTypes = Mapping[str, str]


@dataclass(frozen=True)
class TableLoad:
    """One table to replay: `build_select(current column types)` gives the rows of the study.

    The select is built after the table schema was synced, so it can follow the table (a column
    widened to VARCHAR gets raw text).
    """

    table: str
    build_select: Callable[[ColumnTypes], str]
    comments: Mapping[str, str] = field(default_factory=dict)  # column -> comment
    descriptions: Mapping[str, str] = field(default_factory=dict)
    """lower(column) -> what the asset page says of it (form tables: the variable labels)."""


@dataclass(frozen=True)
class StudyWrite:
    """Everything one asset writes for one study, committed together or not at all.

    `relations` are Arrow tables registered on the connection for the selects to join against.
    `stale_prefix`: this study's rows are also deleted from every other table with this name prefix
    (a form removed from the study must not leave its old rows behind).
    """

    asset_name: str
    study_key: str
    loads: tuple[TableLoad, ...]
    relations: Mapping[str, pa.Table] = field(default_factory=dict)
    stale_prefix: str | None = None
    slices: Mapping[str, LakeSlice] = field(default_factory=dict)
    """The lake slices the rows come from: their change logs decide skip, apply or rewrite."""
    keyed: tuple[str, str] | None = None
    """(lake entity, key column) whose changed keys the asset can replace in place."""
    keyed_source: str | None = None
    """FROM text of the keyed entity's lake rows; the loads read them as `sql.KEYED_ROWS`."""

    def __post_init__(self) -> None:
        if (self.keyed is None) != (self.keyed_source is None):
            # an apply inserts what the loads select: they must read only the changed rows
            raise ValueError(f"{self.asset_name}: keyed and keyed_source go together")


@dataclass(frozen=True)
class WriteOutcome:
    """What a study write did: the study's rows per table afterwards, the plan it followed, and
    the rows it removed and added (a rewrite removes and adds the whole slice)."""

    counts: dict[str, int]
    plan: ChangePlan
    removed: int = 0
    added: int = 0
    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """(name, type) of each written table's columns afterwards."""


class DuckDBSinkError(DestinationError):
    """A DuckDB write failed; the message names the asset, study, database and table."""


def _before_insert(conn: duckdb.DuckDBPyConnection, table: str) -> None:
    """Seam between DELETE and INSERT (tests inject a failure here); does nothing."""


Catalog = dict[str, dict[str, tuple[str, str, str | None]]]
"""lower(table) -> lower(column) -> (name, type, comment)."""


def catalog(conn: duckdb.DuckDBPyConnection) -> Catalog:
    """Every table's columns in one query: `duckdb_columns()` scans the whole catalog whatever
    the filter, so asking once per write costs less than asking per table."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
        "WHERE schema_name = ? ORDER BY table_name, column_index",
        [sql.SCHEMA],
    ).fetchall()
    tables: Catalog = {}
    for table, name, ctype, comment in rows:
        tables.setdefault(table.lower(), {})[name.lower()] = (name, ctype, comment)
    return tables


class CatalogCache:
    """A connection's catalog, read once for the writes of a step: a write that changes a
    schema reads it again, a failed one (its DDL rolled back) forgets it."""

    def __init__(self) -> None:
        self._tables: Catalog | None = None

    def get(self, conn: duckdb.DuckDBPyConnection) -> Catalog:
        if self._tables is None:
            self._tables = catalog(conn)
        return self._tables

    def reread(self, conn: duckdb.DuckDBPyConnection) -> Catalog:
        self._tables = catalog(conn)
        return self._tables

    def forget(self) -> None:
        self._tables = None


class KeyedRows:
    """The changed keys' lake rows (`sql.KEYED_ROWS`) on a connection. A step session keeps
    them for its next write: records_long and the form tables apply the same records changes,
    and reading those rows out of the lake's files costs more than either apply."""

    def __init__(self) -> None:
        self._defined: tuple[str, str | None, frozenset[Any]] | None = None

    def define(self, conn: duckdb.DuckDBPyConnection, source: str, key: str | None,
               keys: frozenset[Any]) -> None:
        """`KEYED_ROWS` as the changed `keys`' rows of `source` (every row when `key` is None),
        unless it already is."""
        wanted = (source, key, keys)
        if key is not None and self._defined == wanted:
            return
        self.drop(conn)
        conn.execute(sql.keyed_rows_sql(source, key))
        self._defined = wanted

    def drop(self, conn: duckdb.DuckDBPyConnection) -> None:
        if self._defined is not None:
            self._defined, (_, key, _) = None, self._defined
            conn.execute(sql.drop_keyed_rows_sql(key))


def sync_schema(conn: duckdb.DuckDBPyConnection, table: str, wanted: list[tuple[str, str]],
                existing: Mapping[str, tuple[str, str, str | None]]) -> bool:
    """Create the table, add new columns, widen clashing types to VARCHAR. Never drops anything.
    `existing` is the table's columns (empty: no table yet); returns whether anything changed."""
    # A column that is NULL in every row of the source has DuckDB type "NULL": store it as text.
    wanted = [(name, "VARCHAR" if ctype == '"NULL"' else ctype) for name, ctype in wanted]
    if not existing:
        conn.execute(sql.create_table_sql(table, wanted))
        return True
    restores: list[tuple[str, str]] = []
    altered = False
    for name, ctype in wanted:
        have = existing.get(name.lower())
        if have is None:
            conn.execute(sql.add_column_sql(table, name, ctype))
            altered = True
        elif have[1] not in (ctype, "VARCHAR"):
            # Same column, different types in different studies: text holds both losslessly.
            conn.execute(sql.widen_column_sql(table, have[0]))
            altered = True
            marker = sql.raw_comment(have[0])
            raws = [col for col, _, comment in existing.values() if comment == marker]
            restores += [(have[0], raw) for raw in raws[:1]]
    for column, raw_column in restores:
        conn.execute(sql.restore_raw_sql(table, column, raw_column))
    return altered


def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
    """Best effort: the original error matters more than a failed ROLLBACK (the connection is
    closed right after, which discards an open transaction anyway)."""
    with contextlib.suppress(duckdb.Error):
        conn.execute("ROLLBACK")


def _count(conn: duckdb.DuckDBPyConnection, statement: str, params: list) -> int:
    """Run a DELETE or INSERT and return how many rows it touched."""
    row = conn.execute(statement, params).fetchone()
    return int(row[0]) if row else 0


def _counts(conn: duckdb.DuckDBPyConnection, tables: list[str], study: str) -> dict[str, int]:
    """The study's rows in each of `tables`, in one statement."""
    if not tables:
        return {}
    rows = conn.execute(sql.count_slices_sql(tables), [study] * len(tables)).fetchall()
    return {tables[i]: int(n) for i, n in rows}


def _sync_state(conn: duckdb.DuckDBPyConnection, write: StudyWrite) -> dict[str, str]:
    conn.execute(sql.create_sync_state_sql())
    rows = conn.execute(sql.SYNC_STATE.select(), [write.asset_name, write.study_key])
    return dict(rows.fetchall())


def _columns_of(tables: Catalog, names: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(name, type) of each table's columns, for the asset page's column schema."""
    return {t: [(name, ctype) for name, ctype, _ in tables.get(t.lower(), {}).values()]
            for t in names}


def _keyed_source(write: StudyWrite, applied: Mapping[str, str], key: str | None) -> str:
    """FROM text of the keyed entity's rows an apply reads: the rows the lake's merges since
    the applied state wrote, when it keeps them (a small file or two), else the slice (whose
    every file holds changed rows: a 1% change touches every row group)."""
    assert write.keyed is not None and write.keyed_source is not None
    if key is None:  # a rewrite reads every row
        return write.keyed_source
    entity = write.keyed[0]
    files = write.slices[entity].change_files(applied.get(entity))
    return sql.change_rows_sql(files, key) if files else write.keyed_source


def write_study(
    conn: duckdb.DuckDBPyConnection, write: StudyWrite, database: str,
    known: CatalogCache | None = None, keyed_rows: KeyedRows | None = None,
) -> WriteOutcome:
    """Bring the study's tables to the lake's state in one transaction: nothing when the stored
    sync state says they are there, the changed keys when the change logs reach back, else the
    whole slice; the new sync state commits with the rows. `known`: the connection's catalog
    as earlier writes left it; `keyed_rows`: the changed rows the step's earlier writes read
    (None: this write reads its own and drops them after)."""
    known = known if known is not None else CatalogCache()
    rows = keyed_rows if keyed_rows is not None else KeyedRows()
    table = "(setup)"
    try:
        for name, relation in write.relations.items():
            conn.register(name, relation)
        applied = _sync_state(conn, write)
        plan = plan_changes(write.slices, applied, write.keyed[0] if write.keyed else None)
        if plan.action == SKIP:
            tables = known.get(conn)
            held = [load.table for load in write.loads if load.table.lower() in tables]
            counts = _counts(conn, held, write.study_key)
            return WriteOutcome(counts, plan, columns=_columns_of(tables, list(counts)))
        key = write.keyed[1] if write.keyed and plan.action == APPLY else None
        if key is not None:
            conn.register(sql.CHANGED_KEYS, pa.table({"key": sorted(plan.keys)}))
        if write.keyed_source is not None:
            # an apply reads the changed keys' rows from the lake once, not once per table
            table = "(changed rows)"
            rows.define(conn, _keyed_source(write, applied, key), key, plan.keys)
        conn.execute("BEGIN TRANSACTION")
        try:
            tables = known.get(conn)
            altered = False
            for load in write.loads:
                table = load.table
                existing = tables.get(table.lower(), {})
                wanted = conn.execute(sql.describe_sql(load.build_select({}))).fetchall()
                altered |= sync_schema(conn, table, [(row[0], row[1]) for row in wanted],
                                       existing)
                for column, comment in load.comments.items():
                    if existing.get(column.lower(), (None, None, None))[2] != comment:
                        conn.execute(sql.comment_column_sql(table, column, comment))
                        altered = True
            if altered:
                tables = known.reread(conn)
            removed = added = 0
            if write.stale_prefix is not None:
                mine = {load.table.lower() for load in write.loads}
                for (other,) in conn.execute(sql.list_tables_sql(write.stale_prefix)).fetchall():
                    if other.lower() not in mine:
                        table = other
                        if key is None:
                            removed += _count(conn, sql.delete_slice_sql(other),
                                              [write.study_key])
                        elif key in tables.get(other.lower(), {}):
                            removed += _count(conn, sql.delete_keys_sql(other, key),
                                              [write.study_key])
            for load in write.loads:
                table = load.table
                types = {k: v[1] for k, v in tables.get(table.lower(), {}).items()}
                select = load.build_select(types)
                if key is None:
                    removed += _count(conn, sql.delete_slice_sql(table), [write.study_key])
                else:  # the select reads `KEYED_ROWS`: the changed keys' rows only
                    removed += _count(conn, sql.delete_keys_sql(table, key), [write.study_key])
                _before_insert(conn, table)
                added += _count(conn, sql.insert_by_name_sql(table, select), [])
            table = "(row counts)"
            counts = _counts(conn, [load.table for load in write.loads], write.study_key)
            table = "(sync state)"
            conn.execute(sql.SYNC_STATE.delete(), [write.asset_name, write.study_key])
            for entity, token in plan.tokens.items():
                conn.execute(sql.insert_sync_state_sql(),
                             [write.asset_name, write.study_key, entity, token])
            table = "(commit)"
            conn.execute("COMMIT")
            return WriteOutcome(counts, plan, removed, added, _columns_of(tables, list(counts)))
        except BaseException:
            _rollback(conn)
            known.forget()
            with contextlib.suppress(duckdb.Error):  # the original error matters more
                rows.drop(conn)
            raise
        finally:
            if keyed_rows is None:
                rows.drop(conn)
    except duckdb.Error as err:
        raise DuckDBSinkError(
            f"DuckDB write of {write.asset_name} for study {write.study_key} failed "
            f"(database {database}, table {table}): {err}"
        ) from err


def markdown_preview(conn: duckdb.DuckDBPyConnection, table: str, study_key: str) -> str:
    """First 5 rows of the study's slice as a small markdown table (cells cut to 40 characters)."""
    cur = conn.execute(sql.preview_slice_sql(table), [study_key])
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 40 else text[:39] + "…"

    lines = ["| " + " | ".join(cell(n) for n in names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _tables_of(context: dg.InputContext | dg.OutputContext) -> str:
    """`duckdb/<name>` -> table `<name>`; `duckdb/form_tables` means every `form_*` table."""
    return context.asset_key.path[-1]


class DuckDBSinkIOManager(DestinationIOManager):
    """Writes a `StudyWrite` for the run's study partition; loads the study's rows back as Arrow."""

    label: ClassVar[str] = "DuckDB sink"
    write_type: ClassVar[type] = StudyWrite

    duckdb: DuckDBResource
    _session: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _catalog: CatalogCache | None = PrivateAttr(default=None)
    _keyed_rows: KeyedRows | None = PrivateAttr(default=None)

    @contextlib.contextmanager
    def step_session(self) -> Iterator[None]:
        """One connection for every output of the step: opening the file and checkpointing it
        on close cost more than a small incremental write."""
        with self._connect() as conn:
            self._session, self._catalog, self._keyed_rows = conn, CatalogCache(), KeyedRows()
            try:
                yield
            finally:
                self._session, self._catalog, self._keyed_rows = None, None, None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The step's connection, else a new one, closed even when the write failed."""
        if self._session is not None:
            try:
                yield self._session
            except BaseException:
                # a failed write fails the step: release the file now, not whenever the step's
                # generator (which holds the session) is collected
                self._session.close()
                self._session, self._catalog, self._keyed_rows = None, None, None
                raise
            return
        if self.duckdb.database != ":memory:":
            # a fresh data dir: DuckDB creates the file but not its folder
            Path(self.duckdb.database).parent.mkdir(parents=True, exist_ok=True)
        with self.duckdb.get_connection() as conn:
            try:
                yield conn
            finally:
                conn.close()

    def write_output(self, context: dg.OutputContext, obj: StudyWrite) -> WriteReport:
        study = obj.study_key
        with self._connect() as conn:
            outcome = write_study(conn, obj, self.duckdb.database, self._catalog,
                                  self._keyed_rows)
            counts, columns = outcome.counts, outcome.columns
            biggest = max(counts, key=lambda t: (counts[t], t)) if counts else None
            preview = markdown_preview(conn, biggest, study) if biggest else ""
        extra: dict[str, Any] = {
            "duckdb_database": self.duckdb.database,
            "tables": dg.MetadataValue.json(sorted(counts)),
            "preview": dg.MetadataValue.md(preview),
        }
        if obj.stale_prefix is not None:
            extra["form_row_counts"] = dg.MetadataValue.json(dict(sorted(counts.items())))
        # the form tables are one asset: `main.form_*`
        table = obj.loads[0].table if obj.stale_prefix is None else f"{obj.stale_prefix}*"
        return WriteReport(
            counts, outcome.plan, inserted=outcome.added, deleted=outcome.removed,
            table_name=f"{sql.SCHEMA}.{table}",
            extra=extra, columns=columns,
            descriptions={load.table: load.descriptions for load in obj.loads})

    def load_input(self, context: dg.InputContext) -> pa.Table | dict[str, pa.Table]:
        """The study's rows of the asset's table (form_tables: a dict table name -> rows)."""
        study = context.partition_key
        name = _tables_of(context)
        with self._connect() as conn:
            try:
                if name == "form_tables":
                    names = [
                        t
                        for (t,) in conn.execute(
                            sql.list_tables_sql(sql.FORM_TABLE_PREFIX)
                        ).fetchall()
                    ]
                    return {
                        t: conn.execute(sql.select_slice_sql(t), [study]).to_arrow_table()
                        for t in names
                    }
                return conn.execute(sql.select_slice_sql(name), [study]).to_arrow_table()
            except duckdb.Error as err:
                raise dg.Failure(
                    description=f"DuckDB read of {name} for study {study} failed "
                    f"(database {self.duckdb.database}): {err}"
                ) from None
