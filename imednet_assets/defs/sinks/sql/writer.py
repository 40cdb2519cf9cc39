"""Brings one study's slice of a group of tables to the lake's state: skip, apply or rewrite.

The sync state (`imednet_sync_state`, beside the data) says which lake state each asset's rows
were built from; with the lake's change logs it gives the plan (`sinks.changes.plan_changes`):
- skip: the tables already hold the lake's state; nothing is written.
- apply: `BEGIN; DELETE the study's rows of the changed keys (from every table of the asset);
  INSERT those keys' new rows; replace the sync state; COMMIT`.
- rewrite: `BEGIN; DELETE the study's rows (also from form tables it no longer has); COPY
  (PostgreSQL) or INSERT (other dialects) all its rows; replace the sync state; COMMIT`.
ROLLBACK on any error, so a write leaves every table exactly as one clean run would, and a failed
one leaves the previous slice. Schema changes (create tables, add columns, widen a clashing column
to text) share the transaction where DDL is transactional (PostgreSQL, SQLite); on MySQL and
MariaDB DDL commits implicitly, so there the schema is synced first, on its own, and only the
rows are in the transaction (tables and columns a failed write added may stay; rows never do).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
import sqlalchemy as sa

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import APPLY, REWRITE, SKIP, ChangePlan, plan_changes
from imednet_assets.defs.sinks.duckdb.naming import shorten
from imednet_assets.defs.sinks.sql import ddl, loader
from imednet_assets.defs.sinks.tabular import StudyTables, TableSpec

# lower(name) -> (name, reflected type, comment)
Columns = dict[str, tuple[str, sa.types.TypeEngine, str | None]]

#: Changed keys deleted per statement (PostgreSQL binds at most 65,535 parameters).
KEYS_PER_DELETE = 1_000
#: MySQL / MariaDB server errors worth a retry: lock wait timeout, deadlock, server shutdown,
#: connection killed; and the client's lost or refused connections.
_MYSQL_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 1927, 2003, 2006, 2013, 2055})


@dataclass(frozen=True)
class SqlStudyWrite:
    """What one asset writes for one study: the tables of `StudyTables` that `wants`.

    `stale_prefix`: this study's rows are also deleted from every other table with this prefix
    (a form removed from the study must not leave its old rows behind).
    `depends_on`: the lake entities the asset's tables are built from; their change logs and the
    stored sync state decide skip, apply or rewrite (empty: every slice).
    `keyed`: (lake entity, key column) whose changed keys can be replaced in place; a change of
    any other entity of `depends_on` rewrites.
    """

    asset_name: str
    study_key: str
    slices: Mapping[str, LakeSlice]
    wants: Callable[[TableSpec], bool]
    stale_prefix: str | None = None
    depends_on: tuple[str, ...] = ()
    keyed: tuple[str, str] | None = None

    def plan_slices(self) -> dict[str, LakeSlice]:
        """The slices whose state the sync state records for this asset."""
        names = self.depends_on or tuple(self.slices)
        return {e: self.slices[e] for e in names}


@dataclass
class WriteResult:
    """What a study write did: the study's rows per table afterwards, what it deleted and
    inserted, and the plan it followed."""

    rows: dict[str, int] = field(default_factory=dict)  # table -> the study's rows after
    deleted: int = 0
    inserted: int = 0
    batches: int = 0
    seconds: float = 0.0
    plan: ChangePlan | None = None
    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """table -> its (column, type) as the database reports them, for the asset page."""
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)


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


def tables_columns(conn: sa.Connection, schema: str | None, tables: Iterable[str]
                   ) -> dict[str, Columns]:
    """The columns of those `tables` that exist, in one reflection query (a study has dozens of
    form tables; one query each is what made a write slow)."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names(schema=schema))
    names = [t for t in tables if t in present]
    if not names:
        return {}
    found = inspector.get_multi_columns(schema=schema, filter_names=names)
    return {
        table: {c["name"].lower(): (c["name"], c["type"], c.get("comment")) for c in columns}
        for (_, table), columns in found.items()
    }


def _describe(conn: sa.Connection, schema: str | None, specs: list[TableSpec],
              result: WriteResult) -> None:
    """The written tables' columns as the database holds them, and the form tables' labels."""
    found = tables_columns(conn, schema, [s.name for s in specs])
    result.columns = {t: [(name, str(ctype)) for name, ctype, _ in cols.values()]
                      for t, cols in found.items()}
    result.descriptions = {s.name: s.form.column_descriptions() for s in specs if s.form}


def _raw_columns(spec: TableSpec) -> dict[str, str]:
    """raw column -> the typed column it keeps the API text of (form tables)."""
    if spec.form is None:
        return {}
    return {c.raw_column_name: c.column_name for c in spec.form.columns if c.raw_column_name}


def sync_schema(
    conn: sa.Connection,
    schema: str | None,
    spec: TableSpec,
    wanted: pa.Schema,
    existing: Columns | None = None,
) -> list[str]:
    """Create the table, add new columns, widen clashing types to text. Never drops anything.

    `existing`: the table's columns when the caller reflected them already ({} when missing).
    Returns the typed columns of `spec` the table holds as text (they must get the raw text).
    """
    dialect = conn.dialect
    table = spec.name
    raws = _raw_columns(spec)
    comments = dialect.supports_comments
    # MySQL writes a comment inside the column definition, the others with COMMENT ON
    inline = ddl.is_mysql(dialect)
    notes = {c: ddl.raw_comment(typed) for c, typed in raws.items()} if comments else {}

    def mark(column: str) -> None:
        if column in notes and not inline:
            conn.execute(sa.text(ddl.comment_column_sql(
                dialect, schema, table, column, notes[column])))

    if existing is None:
        existing = table_columns(conn, schema, table)
    columns = [(f.name, ddl.sql_type(f.type)) for f in wanted]
    if not existing:
        conn.execute(sa.text(ddl.create_table_sql(dialect, schema, table, columns, notes)))
        index = shorten(f"ix_{table}_study_key", ddl.identifier_limit(dialect))
        conn.execute(sa.text(ddl.study_index_sql(dialect, schema, table, index)))
        for name, _ in columns:
            mark(name)
        return []
    restores: list[tuple[str, str]] = []
    altered = False
    for name, ctype in columns:
        have = existing.get(name.lower())
        if have is None:
            conn.execute(sa.text(ddl.add_column_sql(
                dialect, schema, table, name, ctype, notes.get(name))))
            mark(name)
            altered = True
            continue
        have_family, want_family = ddl.family(have[1]), ddl.family(ctype)
        if have_family in (want_family, ddl.TEXT, "other"):
            continue
        # Same column, different types in different studies: text holds both losslessly.
        conn.execute(sa.text(ddl.widen_column_sql(dialect, schema, table, have[0])))
        altered = True
        marker = ddl.raw_comment(have[0])
        restores += [(have[0], col) for col, _, comment in existing.values() if comment == marker]
    for column, raw in restores:
        conn.execute(sa.text(ddl.restore_raw_sql(dialect, schema, table, column, raw)))
    now = table_columns(conn, schema, table) if altered else existing
    if spec.form is None:
        return []
    return [
        c.column_name
        for c in spec.form.columns
        if c.column_type != "VARCHAR" and ddl.family(now[c.column_name.lower()][1]) == ddl.TEXT
    ]


def _stale_tables(conn: sa.Connection, schema: str | None, prefix: str, mine: set[str]
                  ) -> Iterator[str]:
    """Tables with `prefix` and a study column that are not among `mine` (lower-cased)."""
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


def _transient(exc: BaseException) -> bool:
    """Whether a failed write is worth a retry from the start (lost connection, deadlock)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    # COPY goes through psycopg itself: its errors arrive unwrapped
    if isinstance(exc, psycopg.OperationalError) or isinstance(orig, psycopg.OperationalError):
        return True
    if not isinstance(exc, sa.exc.OperationalError):
        return False
    # MySQL drivers file most server errors (a row too large, a bad value) as OperationalError
    # with the numeric error code first: only the codes that say "try again" are transient
    code = orig.args[0] if orig is not None and orig.args else None
    if isinstance(code, int):
        return code in _MYSQL_TRANSIENT
    return True  # SQLite ("database is locked") and other drivers: as before


def _failed(exc: BaseException, progress: loader.LoadProgress) -> SqlWriteFailed:
    orig = getattr(exc, "orig", None)
    shown = orig if isinstance(orig, BaseException) else exc
    # SQLAlchemy appends the statement and bound values (100 kB answers): keep the message only
    text = str(shown).split("\n[SQL:")[0].strip()
    where = f"table {progress.table}, batch {progress.batch}"
    return SqlWriteFailed(where, f"{type(shown).__name__}: {text}", transient=_transient(exc))


class _SyncStateMoved(Exception):
    """Another writer changed this asset's sync state between planning and writing."""


def read_sync_state(conn: sa.Connection, schema: str | None, write: SqlStudyWrite
                    ) -> dict[str, str]:
    """entity -> applied lake token of the asset and study; creates the table when missing.

    Call it outside a transaction: it runs its own (CREATE commits implicitly on MySQL)."""
    table = ddl.sync_state_table(conn.dialect, schema)
    with conn.begin():
        if not sa.inspect(conn).has_table(ddl.SYNC_STATE_TABLE, schema=schema):
            conn.execute(sa.text(ddl.create_sync_state_sql(conn.dialect, schema)))
    with conn.begin():
        return _applied(conn, table, write)


def _applied(conn: sa.Connection, table: sa.Table, write: SqlStudyWrite) -> dict[str, str]:
    params = {"asset": write.asset_name, "study": write.study_key}
    return {e: t for e, t in conn.execute(ddl.read_sync_state(table), params)}


def _store_sync_state(conn: sa.Connection, schema: str | None, write: SqlStudyWrite,
                      applied: Mapping[str, str], plan: ChangePlan) -> None:
    """Replace the asset's sync state for the study, inside the data's transaction; the state
    must still be the one the plan was made from (else another writer got in between)."""
    table = ddl.sync_state_table(conn.dialect, schema)
    if _applied(conn, table, write) != dict(applied):
        raise _SyncStateMoved(
            f"the sync state of {write.asset_name} for study {write.study_key} changed while "
            "writing (another writer?)")
    conn.execute(ddl.delete_sync_state(table), {"asset": write.asset_name,
                                                "study": write.study_key})
    conn.execute(table.insert(), [
        {"asset": write.asset_name, "study_key": write.study_key, "entity": entity,
         "lake_token": token}
        for entity, token in sorted(plan.tokens.items())
    ])


def _count(conn: sa.Connection, schema: str | None, table: str, study: str) -> int:
    text = sa.text(ddl.count_slice_sql(conn.dialect, schema, table))
    return int(conn.execute(text, {"study": study}).scalar_one())


def _delete(conn: sa.Connection, schema: str | None, table: str, study: str,
            key: str | None, keys: Collection[Any]) -> int:
    """Delete the study's rows (`key` None) or its rows of `keys`; how many went."""
    if key is None:
        gone = conn.execute(sa.text(ddl.delete_slice_sql(conn.dialect, schema, table)),
                            {"study": study})
        return max(gone.rowcount, 0)
    statement = sa.text(ddl.delete_keys_sql(conn.dialect, schema, table, key)).bindparams(
        sa.bindparam("keys", expanding=True))
    ordered, count = sorted(keys), 0
    for i in range(0, len(ordered), KEYS_PER_DELETE):
        chunk = ordered[i : i + KEYS_PER_DELETE]
        count += max(conn.execute(statement, {"study": study, "keys": chunk}).rowcount, 0)
    return count


def _plan(conn: sa.Connection, schema: str | None, write: SqlStudyWrite,
          specs: list[TableSpec]) -> tuple[ChangePlan, dict[str, str]]:
    """The plan from the stored sync state; a table of the asset missing in the destination
    (dropped by hand, or new) means a rewrite whatever the state says."""
    applied = read_sync_state(conn, schema, write)
    slices = write.plan_slices()
    plan = plan_changes(slices, applied, write.keyed[0] if write.keyed else None)
    if plan.action == APPLY and write.keyed:
        entity, key = write.keyed
        logged = slices[entity].manifest
        if logged is not None and logged.key_column != key:
            # the change log names other keys than the tables are deleted by
            return ChangePlan(REWRITE, plan.tokens, f"the {entity} change log is keyed by "
                              f"{logged.key_column}, the tables by {key}"), applied
    if plan.action != REWRITE:
        with conn.begin():
            present = {t.lower() for t in sa.inspect(conn).get_table_names(schema=schema)}
        missing = sorted(s.name for s in specs if s.name.lower() not in present)
        if missing:
            plan = ChangePlan(REWRITE, plan.tokens,
                              f"the destination lacks table(s) {', '.join(missing[:5])}")
    return plan, applied


def _sync_all(conn: sa.Connection, schema: str | None, tables: StudyTables,
              specs: list[TableSpec], progress: loader.LoadProgress) -> dict[str, list[str]]:
    """Sync every table's schema; table -> the typed columns it holds as text."""
    if ddl.is_mysql(conn.dialect):
        # strict mode refuses a wide form whose worst-case row exceeds InnoDB's 8 kB page
        # (about 400 text columns) although its real rows fit; a row that really does not
        # fit still fails on INSERT, inside the data transaction
        conn.execute(sa.text("SET SESSION innodb_strict_mode = OFF"))
    text_columns: dict[str, list[str]] = {}
    existing = tables_columns(conn, schema, [s.name for s in specs])
    for spec in specs:
        progress.table = spec.name
        text_columns[spec.name] = sync_schema(conn, schema, spec, tables.schema(spec),
                                              existing.get(spec.name, {}))
    if ddl.is_mysql(conn.dialect):
        conn.execute(sa.text("SET SESSION innodb_strict_mode = DEFAULT"))
    return text_columns


def write_study(
    engine: sa.Engine,
    write: SqlStudyWrite,
    *,
    schema: str | None,
    batch_rows: int,
    load: Load = bulk_load,
) -> WriteResult:
    """Bring `write`'s tables to the lake's state (skip, apply or rewrite, see the module), the
    sync state committed with the rows; raises `SqlWriteFailed` (after ROLLBACK) on error.

    `load` puts one table's rows in (the benchmark swaps in slower ways to compare)."""
    started = time.perf_counter()
    result = WriteResult()
    progress = loader.LoadProgress()
    limit = ddl.identifier_limit(engine.dialect)
    try:
        # one connection, several transactions in turn: the sync state, (MySQL) the schema,
        # then the rows (a new connection costs a TLS handshake on MySQL)
        with (
            StudyTables(write.study_key, write.slices, max_identifier_length=limit) as tables,
            engine.connect() as conn,
        ):
            specs = [s for s in tables.specs() if write.wants(s)]
            progress.table = "(sync state)"
            plan, applied = _plan(conn, schema, write, specs)
            result.plan = plan
            if plan.action == SKIP:
                with conn.begin():
                    for spec in specs:
                        progress.table = spec.name
                        result.rows[spec.name] = _count(conn, schema, spec.name, write.study_key)
                _describe(conn, schema, specs, result)
                result.seconds = time.perf_counter() - started
                return result
            key = write.keyed[1] if write.keyed and plan.action == APPLY else None
            if key is not None:
                tables.only_keys(key, plan.keys)
            text_columns: dict[str, list[str]] = {}
            if not ddl.transactional_ddl(conn.dialect):
                # DDL would commit the data transaction halfway: the schema goes first
                with conn.begin():
                    text_columns = _sync_all(conn, schema, tables, specs, progress)
            with conn.begin():  # COMMIT on success, ROLLBACK on any exception
                if ddl.transactional_ddl(conn.dialect):
                    text_columns = _sync_all(conn, schema, tables, specs, progress)
                if write.stale_prefix is not None:
                    # the study's rows in tables of forms it no longer has (apply: of the keys)
                    mine = {s.name.lower() for s in specs}
                    for other in _stale_tables(conn, schema, write.stale_prefix, mine):
                        progress.table = other
                        if key is None or key.lower() in table_columns(conn, schema, other):
                            result.deleted += _delete(conn, schema, other, write.study_key,
                                                      key, plan.keys)
                for spec in specs:
                    progress.table, progress.batch, progress.rows = spec.name, 0, 0
                    result.deleted += _delete(conn, schema, spec.name, write.study_key, key,
                                              plan.keys)
                    _before_load(conn, spec.name)
                    reader = tables.read(
                        spec, text_columns=text_columns[spec.name], batch_rows=batch_rows
                    )
                    load(conn, schema, spec.name, reader, progress)
                    reader.close()  # a load that stopped early must not block the next read
                    result.inserted += progress.rows
                    result.batches += progress.batch
                    result.rows[spec.name] = (
                        progress.rows if key is None
                        else _count(conn, schema, spec.name, write.study_key))
                progress.table, progress.batch = "(sync state)", 0
                _store_sync_state(conn, schema, write, applied, plan)
                progress.table = "(commit)"
            progress.table = "(describe)"
            _describe(conn, schema, specs, result)
    except ddl.WideningUnsupported as exc:
        raise SqlWriteFailed(f"table {progress.table}", str(exc), transient=False) from None
    except _SyncStateMoved as exc:
        raise SqlWriteFailed(f"table {progress.table}", str(exc), transient=True) from None
    except (sa.exc.SQLAlchemyError, psycopg.Error) as exc:
        raise _failed(exc, progress) from None
    result.seconds = time.perf_counter() - started
    return result
