"""Brings one study's tables in Snowflake to the lake's state: staged Parquet, then DELETE + COPY
and the new sync state in one transaction.

What to load comes from the lake's change logs and the sync state the destination keeps
(`IMEDNET_SYNC_STATE`, see `sinks/changes.py`): nothing (skip), the rows of the changed keys
(apply: their old rows are deleted, their new rows copied in), or the study's whole slice (rewrite).

Order, and why:
0. The sync state is read and the plan made; a skip stops here (nothing staged or copied).
1. Schema first (CREATE TABLE / ADD COLUMN / widen to text): DDL commits implicitly in Snowflake,
   so it cannot share the data transaction. It only ever adds, so a later failure harms nothing.
2. Parquet files written locally and PUT to `@stage/<prefix>/<study>/<run_id>/<attempt>/<table>/`,
   a path no earlier load used: Snowflake skips files it loaded before, so reusing a path after a
   DELETE would load nothing.
3. `BEGIN; DELETE slice (apply: the changed keys' rows); COPY INTO ...; check every file LOADED
   with the expected rows; INSERT manifest rows; replace the sync state; COMMIT` - else ROLLBACK:
   the previous rows and the previous sync state stay.
4. One `REMOVE` of the attempt's stage folder whatever happened.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import snowflake.connector.errors as sf_errors

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import APPLY, REWRITE, SKIP, ChangePlan, plan_changes
from imednet_assets.defs.sinks.common import DestinationError, error_detail, with_retries
from imednet_assets.defs.sinks.snowflake import sql
from imednet_assets.defs.sinks.snowflake.resources import SnowflakeLoadSettings
from imednet_assets.defs.sinks.snowflake.staging import (
    ManifestRecord,
    StagedFile,
    append_jsonl,
    write_files,
)
from imednet_assets.defs.sinks.tabular import StudyTables, TableSpec
from imednet_assets.settings import redact

#: Snowflake's identifier limit is 255 characters; bytes are the safe reading of it.
MAX_IDENTIFIER_LENGTH = 255
_WIDEN_SUFFIX = "__IMEDNET_WIDEN"
_TRANSIENT = (sf_errors.OperationalError, sf_errors.InterfaceError)


#: table (`"form"`: every form table) -> (the lake entities its rows depend on, the (entity, key
#: column) whose changed keys can be replaced in place; None: any change rewrites the table).
#: The form tables and records_long take their columns, labels and names from the dictionary, so
#: a change of forms or variables rewrites them.
TABLE_INPUTS: dict[str, tuple[tuple[str, ...], tuple[str, str] | None]] = {
    "subjects": (("subjects",), ("subjects", "subject_id")),
    "visits": (("visits",), ("visits", "visit_id")),
    "forms": (("forms", "variables"), None),
    "variables": (("forms", "variables"), None),
    "records_long": (("forms", "variables", "records"), ("records", "record_id")),
    "form": (("forms", "variables", "records"), ("records", "record_id")),
}


@dataclass(frozen=True)
class SnowflakeWrite:
    """What one asset loads for one study: the tables named in `tables` (`"form"`: every form
    table, and the study's rows leave form tables of forms it no longer has)."""

    asset_name: str
    study_key: str
    slices: Mapping[str, LakeSlice]
    tables: frozenset[str]

    def selects(self, spec: TableSpec) -> bool:
        return spec.name in self.tables or (spec.kind == "form" and "form" in self.tables)

    def change_slices(self) -> dict[str, LakeSlice]:
        """The slices the tables depend on: only their change logs decide skip/apply/rewrite
        (a change of visits must not rewrite the subjects)."""
        entities = {e for t in self.tables for e in TABLE_INPUTS[t][0]}
        return {e: self.slices[e] for e in sorted(entities)}

    @property
    def keyed(self) -> tuple[str, str] | None:
        """(entity, key column) every table can be applied by, or None (rewrite on change)."""
        keyed = {TABLE_INPUTS[t][1] for t in self.tables}
        return next(iter(keyed)) if len(keyed) == 1 else None


@dataclass
class TableLoad:
    """One table's staged batches."""

    table: str
    stage_path: str
    files: list[StagedFile] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


@dataclass
class LoadReport:
    """What a load did. `rows`: the study's rows per table afterwards; `loaded`: rows copied in
    per table; `deleted`: rows deleted per table (stale form tables included)."""

    rows: dict[str, int]
    deleted: dict[str, int]
    batches: int
    seconds: float
    stage_paths: list[str]
    manifest: list[ManifestRecord]
    plan: ChangePlan | None = None
    loaded: dict[str, int] = field(default_factory=dict)
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict)
    """form table -> lower(column) -> its variable's label, for the asset page."""
    columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """table -> its (name, type) columns after the schema sync (a skip: as the catalog read
    before it found them), for the asset page."""

    @property
    def rows_deleted(self) -> int:
        return sum(self.deleted.values())

    @property
    def rows_inserted(self) -> int:
        return sum(self.loaded.values())


def attempt_path(prefix: str, study: str, run_id: str, attempt: str) -> str:
    """`<prefix>/<study>/<run_id>/<attempt>/`: the folder of one load's staged files, unique to
    the run and to the attempt, so a retried step never meets files an earlier attempt left
    behind, and one REMOVE clears every table's files."""
    return "/".join([prefix, sql.path_segment(study), sql.path_segment(run_id), attempt]) + "/"


def stage_path(prefix: str, study: str, table: str, run_id: str, attempt: str) -> str:
    """`<attempt folder>/<table>/`: where one table's files are staged and copied from."""
    return f"{attempt_path(prefix, study, run_id, attempt)}{table}/"


def _before_copy(cursor: Any, load: TableLoad) -> None:
    """Seam inside the transaction, after PUT and DELETE, before COPY (tests inject failures)."""


class _Step:
    """Where the load is, for error messages."""

    def __init__(self) -> None:
        self.table = "(setup)"
        self.batch = "-"


def check_copy(
    description: Sequence[Any] | None, rows: Sequence[Sequence[Any]], files: Sequence[StagedFile]
) -> None:
    """Raise unless the COPY result says every file of `files` was LOADED, with its rows, no errors.

    Catches what a bare COPY would pass silently: LOAD_SKIPPED ("loaded before"), partial loads,
    missing files and row count mismatches.
    """
    names = [str(d[0]).lower() for d in description or []]
    if "status" not in names or "file" not in names:
        status = rows[0][0] if rows and rows[0] else "no result"
        raise ValueError(f"COPY loaded no file ({status})")
    results = [dict(zip(names, row, strict=False)) for row in rows]
    by_name = {str(r["file"]).rsplit("/", 1)[-1]: r for r in results}
    for staged in files:
        result = by_name.get(staged.name)
        if result is None:
            raise ValueError(f"COPY did not report file {staged.name}")
        status = str(result.get("status")).upper()
        errors = int(result.get("errors_seen") or 0)
        loaded = int(result.get("rows_loaded") or 0)
        if status != "LOADED" or errors:
            first = result.get("first_error")
            raise ValueError(
                f"COPY of {staged.name}: status {status}, {errors} error(s)"
                + (f", first: {first}" if first else "")
            )
        if loaded != staged.rows:
            raise ValueError(
                f"COPY of {staged.name} loaded {loaded} rows, {staged.rows} were staged"
            )
    extra = set(by_name) - {f.name for f in files}
    if extra:
        raise ValueError(f"COPY loaded files it was not given: {sorted(extra)}")


def _fetch(cursor: Any, text: str, params: Sequence[Any] | None = None) -> list[tuple]:
    cursor.execute(text, params)
    return list(cursor.fetchall())


#: table -> upper(column name) -> (name, type), each table's columns in table order
Catalog = dict[str, dict[str, tuple[str, str]]]


def read_catalog(cursor: Any, table: str | None = None) -> Catalog:
    """The schema's base tables and their columns (or only `table`'s), in one query. Types read
    `NUMBER(p,s)` with their precision, others by name (`TEXT`, `FLOAT`, `TIMESTAMP_NTZ`)."""
    rows = _fetch(cursor, sql.catalog_sql(one_table=table is not None),
                  None if table is None else (table,))
    out: Catalog = {}
    for name, column, ctype, precision, scale in rows:
        full = f"{ctype}({precision},{scale})" if ctype == "NUMBER" and precision is not None \
            else ctype
        out.setdefault(name, {})[column.upper()] = (column, full)
    return out


def table_columns(cursor: Any, table: str) -> dict[str, tuple[str, str]]:
    """upper(name) -> (name, type) of an existing table, in table order."""
    return read_catalog(cursor, table).get(table, {})


def _raw_columns(cursor: Any, table: str, column: str, catalog: Catalog) -> list[str]:
    """Raw-text columns the dictionary knows for `column` (any study), to refill it exactly."""
    forms, variables = sql.name("forms"), sql.name("variables")
    if forms not in catalog or variables not in catalog:
        return []
    try:
        found = _fetch(cursor, sql.raw_columns_sql(forms, variables), (table, column))
    except sf_errors.ProgrammingError:  # an older dictionary without the naming columns
        return []
    return [r for (r,) in found if r]


def sync_schema(
    cursor: Any, table: str, wanted: Sequence[tuple[str, str]], catalog: Catalog
) -> list[str]:
    """Create `table` or add its missing columns; a column whose type differs from the wanted one
    becomes text (filled from the raw API text). Never drops data. Returns the columns the table
    holds as text while the study's plan types them (those are read as raw text). `catalog`'s
    entry for the table follows what this did without reading it back: a round trip per table
    adds up when a write of the form tables syncs dozens."""
    if table not in catalog:
        cursor.execute(sql.create_table_sql(table, wanted))
        catalog[table] = {col.upper(): (col, sql.catalog_type(ctype)) for col, ctype in wanted}
        return []
    have = catalog[table]
    leftovers = [col for upper, (col, _) in have.items() if upper.endswith(_WIDEN_SUFFIX)]
    for col in leftovers:
        # a widening cut short: finish it (renamed) or drop the half-made copy
        base = col[: -len(_WIDEN_SUFFIX)]
        if base.upper() in have:
            cursor.execute(sql.drop_column_sql(table, col))
        else:
            cursor.execute(sql.rename_column_sql(table, col, base))
    if leftovers:
        have = catalog[table] = table_columns(cursor, table)
    text: list[str] = []
    for col, ctype in wanted:
        current = have.get(col.upper())
        if current is None:
            cursor.execute(sql.add_column_sql(table, col, ctype))
            have[col.upper()] = (col, sql.catalog_type(ctype))
        elif sql.type_family(current[1]) == sql.type_family(ctype):
            continue
        elif sql.type_family(current[1]) == "TEXT":
            text.append(col)
        else:
            _widen(cursor, table, current[0], [r for r in _raw_columns(cursor, table, col, catalog)
                                                if r.upper() in have])
            # dropped and re-added under its name: now the table's last column
            del have[col.upper()]
            have[col.upper()] = (current[0], sql.catalog_type("VARCHAR"))
            text.append(col)
    return text


def _widen(cursor: Any, table: str, column: str, raw_columns: list[str]) -> None:
    # Snowflake cannot ALTER a NUMBER/DATE column to VARCHAR: copy into a text column and swap.
    temp = column + _WIDEN_SUFFIX
    cursor.execute(sql.add_column_sql(table, temp, "VARCHAR"))
    cursor.execute(sql.fill_text_sql(table, temp, column, [sql.name(r) for r in raw_columns]))
    cursor.execute(sql.drop_column_sql(table, column))
    cursor.execute(sql.rename_column_sql(table, temp, column))


def _rollback(cursor: Any) -> None:
    # best effort: the original error matters more; closing the connection discards it anyway
    with contextlib.suppress(Exception):
        cursor.execute("ROLLBACK")


def read_sync_state(cursor: Any, write: SnowflakeWrite) -> dict[str, str]:
    """entity -> lake token the asset stored for the study (empty: never written)."""
    return dict(_fetch(cursor, sql.SYNC_STATE.select(), (write.asset_name, write.study_key)))


def _study_rows(cursor: Any, tables: Sequence[str], study: str) -> dict[str, int]:
    """The study's rows in each of `tables` (which exist)."""
    if not tables:
        return {}
    counts = dict(_fetch(cursor, sql.count_slices_sql(tables), {"study": study}))
    return {table: int(counts.get(table) or 0) for table in tables}


def _key_type(keys: frozenset[Any]) -> str:
    """The key table's column type: the keys' own (ids are numbers), text when mixed."""
    try:
        arrow_type = pa.array(sorted(keys)).type if keys else pa.int64()
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        arrow_type = pa.string()
    return sql.snowflake_type(arrow_type)


def load_study(
    conn: Any,
    write: SnowflakeWrite,
    settings: SnowflakeLoadSettings,
    *,
    run_id: str,
    destination: str,
    secrets: Sequence[str | None] = (),
    log: Callable[[str], None] = lambda _msg: None,
) -> LoadReport:
    """Bring `write`'s tables to the lake's state over `conn` (see the module docstring)."""
    started = time.perf_counter()
    study = write.study_key
    step = _Step()
    stage = settings.stage
    staged_paths: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="imednet-snowflake-"))
    cursor = conn.cursor()
    attempt = uuid.uuid4().hex[:12]
    folder = attempt_path(settings.stage_prefix, study, run_id, attempt)
    try:
        step.table = sql.SYNC_STATE_TABLE
        catalog = read_catalog(cursor)
        if sql.SYNC_STATE_TABLE not in catalog:  # DDL: before any transaction
            cursor.execute(sql.sync_state_table_sql())
        applied = read_sync_state(cursor, write)
        keyed = write.keyed
        slices = write.change_slices()
        plan = plan_changes(slices, applied, keyed[0] if keyed else None)
        key = keyed[1] if keyed and plan.action == APPLY else None
        logged = slices[keyed[0]].manifest if keyed else None
        if key is not None and logged is not None and logged.key_column != key:
            # the change log names other keys than the tables are deleted by
            plan = replace(plan, action=REWRITE, entity=None, keys=frozenset(),
                           reason=f"the {keyed[0]} change log is keyed by {logged.key_column}, "
                           f"the tables by {key}")
            key = None
        with StudyTables(study, write.slices, max_identifier_length=MAX_IDENTIFIER_LENGTH) as t:
            specs = [s for s in t.specs() if write.selects(s)]
            descriptions = {sql.name(s.name): s.form.column_descriptions()
                            for s in specs if s.form}
            missing = sorted({sql.name(s.name) for s in specs} - catalog.keys())
            if missing and plan.action != REWRITE:
                # dropped by someone, or a form new to the study: the sync state cannot vouch
                # for rows that are not there
                plan = replace(plan, action=REWRITE, entity=None, keys=frozenset(),
                               reason=f"missing in the destination: {', '.join(missing)}")
                key = None
            if plan.action == SKIP:
                step.table = "(count)"
                rows = _study_rows(cursor, [sql.name(s.name) for s in specs], study)
                return LoadReport(rows, {}, 0, time.perf_counter() - started, [], [], plan,
                                  descriptions=descriptions,
                                  columns={t: list(catalog[t].values()) for t in rows})
            if key is not None:
                # only the changed keys' rows are staged; their old rows are deleted by key
                t.only_keys(key, plan.keys)
                step.table = sql.CHANGED_KEYS_TABLE
                # DDL commits implicitly: the key table is made before the transaction
                cursor.execute(sql.changed_keys_table_sql(_key_type(plan.keys)))
            loads: list[TableLoad] = []
            for spec in specs:
                step.table, step.batch = sql.name(spec.name), "-"
                schema = t.schema(spec)
                wanted = [(sql.name(f.name), sql.snowflake_type(f.type)) for f in schema]
                text = sync_schema(cursor, step.table, wanted, catalog)
                path = stage_path(settings.stage_prefix, study, step.table, run_id, attempt)
                load = TableLoad(step.table, path)
                reader = t.read(spec, text_columns=text, batch_rows=settings.batch_size)
                load.files = write_files(reader, reader.schema, work / step.table,
                                         target_bytes=int(settings.target_file_mb * 2**20))
                for n, staged in enumerate(load.files):
                    step.batch = f"{study}/{step.table}/{n}"
                    if not staged_paths or staged_paths[-1] != path:
                        staged_paths.append(path)
                    with_retries(
                        lambda staged=staged, path=path: cursor.execute(
                            sql.put_sql(str(staged.path), stage, path)),
                        settings=settings, transient=_TRANSIENT, secrets=secrets,
                        what=f"{destination}: PUT of study {study}, batch {step.batch}",
                    )
                    staged.path.unlink()  # uploaded: local disk holds one table at a time
                loads.append(load)
            stale: list[str] = []
            if "form" in write.tables:
                mine = {ld.table for ld in loads}
                stale = sorted(x for x in catalog
                               if x.startswith(sql.FORM_TABLE_PREFIX) and x not in mine)
            report = _transaction(cursor, write, settings, loads, stale, run_id, step,
                                  plan, applied, sql.name(key) if key else None)
        append_jsonl(Path(settings.manifest_file()), report.manifest)
        report.stage_paths = staged_paths
        report.descriptions = descriptions
        report.columns = {ld.table: list(catalog[ld.table].values()) for ld in loads}
        report.seconds = time.perf_counter() - started
        return report
    except DestinationError:
        raise
    except Exception as err:
        detail = error_detail(err, secrets, 1000)
        raise DestinationError(
            f"{destination}: load of {write.asset_name} for study {study} failed at table "
            f"{step.table}, batch {step.batch}; nothing of this load was committed. {detail}"
        ) from None
    finally:
        if staged_paths:  # every table's files, in one round trip
            try:
                cursor.execute(sql.remove_sql(stage, folder))
            except Exception as err:  # noqa: BLE001 - cleanup must not hide the load's outcome
                log(f"could not REMOVE {sql.stage_ref(stage, folder)}: "
                    f"{redact(str(err), list(secrets))[:300]}")
        with contextlib.suppress(Exception):
            cursor.close()
        shutil.rmtree(work, ignore_errors=True)


def _delete(cursor: Any, table: str, study: str, key: str | None) -> int:
    """Delete the study's slice of `table`, or (apply) only the rows of the changed keys."""
    text = sql.delete_slice_sql(table) if key is None else sql.delete_keys_sql(table, key)
    return _first_int(_fetch(cursor, text, (study,)))


def _insert_keys(cursor: Any, keys: frozenset[Any]) -> None:
    ordered = sorted(keys)
    for start in range(0, len(ordered), sql.MAX_VALUES_ROWS):
        chunk = ordered[start:start + sql.MAX_VALUES_ROWS]
        cursor.execute(sql.insert_changed_keys_sql(len(chunk)), chunk)


def _transaction(
    cursor: Any,
    write: SnowflakeWrite,
    settings: SnowflakeLoadSettings,
    loads: list[TableLoad],
    stale: list[str],
    run_id: str,
    step: _Step,
    plan: ChangePlan,
    applied: Mapping[str, str],
    key: str | None,
) -> LoadReport:
    """The write's one transaction; `key` set means apply (delete and copy only changed keys)."""
    study = write.study_key
    loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    manifest: list[ManifestRecord] = []
    deleted: dict[str, int] = {}
    cursor.execute("BEGIN")
    try:
        step.table, step.batch = sql.SYNC_STATE_TABLE, "-"
        if read_sync_state(cursor, write) != dict(applied):
            # the plan was made against another state: committing would skip or repeat changes
            raise RuntimeError("the sync state changed while this load was staged (another "
                               "writer of this study?); run it again")
        if key is not None:
            step.table = sql.CHANGED_KEYS_TABLE
            _insert_keys(cursor, plan.keys)
        for other in stale:
            step.table, step.batch = other, "-"
            # a form the study no longer has: its rows go (apply: those of changed records)
            deleted[other] = _delete(cursor, other, study, key)
        for load in loads:
            step.table, step.batch = load.table, "-"
            deleted[load.table] = _delete(cursor, load.table, study, key)
            if not load.files:
                continue
            step.batch = f"{study}/{load.table}/0..{len(load.files) - 1}"
            _before_copy(cursor, load)
            cursor.execute(sql.copy_into_sql(load.table, settings.stage, load.stage_path))
            check_copy(cursor.description, cursor.fetchall(), load.files)
            manifest += [
                ManifestRecord(
                    batch_id=f"{study}/{load.table}/{n}", study_key=study, table_name=load.table,
                    stage_path=sql.stage_ref(settings.stage, load.stage_path), file_name=f.name,
                    rows=f.rows, checksum=f.checksum, run_id=run_id, loaded_at=loaded_at,
                )
                for n, f in enumerate(load.files)
            ]
        step.batch = "-"
        if key is None:
            rows = {ld.table: ld.rows for ld in loads}
        else:  # the unchanged rows stayed: count what the study holds now
            step.table = "(count)"
            rows = _study_rows(cursor, [ld.table for ld in loads], study)
        step.table = sql.MANIFEST_TABLE
        if manifest:
            params = [v for record in manifest for v in record.values()]
            cursor.execute(sql.insert_manifest_sql(len(manifest)), params)
        step.table = sql.SYNC_STATE_TABLE
        cursor.execute(sql.SYNC_STATE.delete(), (write.asset_name, study))
        if plan.tokens:
            cursor.execute(sql.insert_sync_state_sql(len(plan.tokens)),
                           [v for entity, token in plan.tokens.items()
                            for v in (write.asset_name, study, entity, token)])
        step.table = "(commit)"
        cursor.execute("COMMIT")
    except BaseException:
        _rollback(cursor)
        raise
    return LoadReport(
        rows=rows,
        deleted=deleted,
        batches=len(manifest),
        seconds=0.0,
        stage_paths=[],
        manifest=manifest,
        plan=plan,
        loaded={ld.table: ld.rows for ld in loads},
    )


def _first_int(rows: list[tuple]) -> int:
    """The first cell of a DELETE's or COUNT's result (0 when there is none)."""
    return int(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else 0


def ensure_stage_and_manifest(cursor: Any, settings: SnowflakeLoadSettings) -> None:
    """The stage and the load manifest table (DDL, before any load); `load_study` makes the
    sync-state table when it is missing."""
    cursor.execute(sql.create_stage_sql(settings.stage))
    cursor.execute(sql.manifest_table_sql())


def preview(cursor: Any, table: str, study: str, columns: Sequence[str]) -> str:
    """First rows of the study's slice as a small markdown table (first 8 columns, short cells)."""
    cols = list(columns)[:8]
    rows = _fetch(cursor, sql.preview_slice_sql(table, cols), (study,))

    def cell(value: object) -> str:
        text = "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= 40 else text[:39] + "…"

    lines = ["| " + " | ".join(cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def arrow_columns(schema: pa.Schema) -> list[str]:
    return [sql.name(f.name) for f in schema]
