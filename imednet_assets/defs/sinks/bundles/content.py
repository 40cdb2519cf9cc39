"""What every bundle holds, whatever its format: one table per form (headers by variable names or
labels), the data dictionary, and the information about the extraction.

Rows come from `StudyTables` (the same tables every tabular destination gets) as Arrow batches;
only the small dictionary is held whole.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.cells import HeaderMode, SheetNames, form_headers
from imednet_assets.defs.sinks.tabular import StudyTables, TableSpec

#: Headers of the dictionary's added columns: where each variable landed in the bundle.
HEADER_COLUMN = "header"
RAW_HEADER_COLUMN = "raw_header"
_END = object()


@dataclass(frozen=True)
class FormPart:
    """One form's table in the bundle: its spec, headers (in column order) and names."""

    spec: TableSpec
    form_key: str
    form_name: str | None
    columns: tuple[str, ...]  # the wide table's column names
    headers: tuple[str, ...]
    member: str  # CSV / JSON lines file name without extension (the wide table's name)
    sheet: str  # XLSX sheet name (further sheets of a very long form: `<sheet> (2)`, ...)


@dataclass
class WriteStats:
    """What a writer wrote: rows per form part member and (XLSX) cut cells and sheets."""

    rows: dict[str, int] = field(default_factory=dict)
    cut_cells: int = 0
    # form member -> [(sheet, data rows)]: a form longer than a sheet continues on more sheets
    sheets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def extraction_time(slices: Mapping[str, LakeSlice]) -> dt.datetime:
    """When the lake slices were written from the API (newest file, UTC, whole seconds).

    Taken from the lake, not the clock, so writing a bundle again from the same lake gives the
    same bytes.
    """
    stamps = [f.stat().st_mtime for s in slices.values() for f in s.files]
    stamps += [s.path.stat().st_mtime for s in slices.values() if s.path.exists()]
    newest = max(stamps, default=0.0)
    return dt.datetime.fromtimestamp(int(newest), dt.UTC).replace(tzinfo=None)


def prefetched(batches: Iterable[pa.RecordBatch], depth: int = 1) -> Iterator[pa.RecordBatch]:
    """`batches`, the next ones read by a second thread while the caller works on this one
    (DuckDB and Arrow release the GIL); at most `depth` batches wait. The thread has stopped
    when the iterator ends or is closed, so the reader's connection is free again."""
    waiting: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        item: object = _END
        try:
            for batch in batches:
                waiting.put(batch)
                if stop.is_set():
                    return
        except BaseException as err:  # noqa: BLE001 - raised in the caller's thread
            item = err
        waiting.put(item)

    thread = threading.Thread(target=read, name="bundle-lake-reader", daemon=True)
    thread.start()
    try:
        while (item := waiting.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # a reader blocked on a full queue gets its place
            with contextlib.suppress(queue.Empty):
                waiting.get(timeout=0.05)
        thread.join()


def finite(batch: pa.RecordBatch) -> pa.RecordBatch:
    """NaN and infinities (a NUMBER answer like `NaN`) become null in typed columns: no format
    holds them portably; the `__raw` column keeps the API's text."""
    columns = []
    for col in batch.columns:
        if pa.types.is_floating(col.type):
            col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


class StudyContent:
    """A study's bundle content over its `StudyTables`; read the parts one at a time."""

    def __init__(
        self,
        tables: StudyTables,
        *,
        headers: HeaderMode,
        source: str,
        extracted_at: dt.datetime,
        study_name: str | None = None,
        batch_rows: int = 10_000,
    ) -> None:
        self.tables = tables
        self.study_key = tables.study_key
        self.header_mode = headers
        self.source = source
        self.extracted_at = extracted_at
        self.study_name = study_name
        self.batch_rows = batch_rows
        specs = tables.specs()
        self._specs = {s.name: s for s in specs}
        names = self._form_names()
        sheets = SheetNames()
        self.parts: list[FormPart] = []
        self._schemas: dict[str, pa.Schema] = {}  # form table -> its schema (asked once)
        for spec in specs:
            if spec.kind != "form" or spec.form is None:
                continue
            by_column = form_headers(spec.form, headers)
            self._schemas[spec.name] = tables.schema(spec)
            columns = self._schemas[spec.name].names
            self.parts.append(
                FormPart(
                    spec=spec,
                    form_key=spec.form.form_key,
                    form_name=names.get(spec.form.form_key),
                    columns=tuple(columns),
                    headers=tuple(by_column[c] for c in columns),
                    member=spec.name,
                    sheet=sheets.take(spec.form.form_key),
                )
            )
        self.sheet_names = sheets
        self.latest_change: dt.datetime | None = None
        self.batches_read = 0  # Arrow batches of form rows handed to the writer

    def _form_names(self) -> dict[str, str | None]:
        forms = self.tables.read(self._specs["forms"]).read_all()
        pairs = zip(
            forms.column("form_key").to_pylist(), forms.column("form_name").to_pylist(), strict=True
        )
        return dict(pairs)

    def batches(self, part: FormPart) -> Iterator[pa.RecordBatch]:
        """The form's rows, headed by the bundle's headers; notes the newest `date_modified`."""
        reader = self.tables.read(part.spec, batch_rows=self.batch_rows)
        for batch in prefetched(reader):
            if batch.num_rows == 0:
                continue
            self.batches_read += 1
            newest = pc.max(batch.column("date_modified")).as_py()
            if newest is not None and (self.latest_change is None or newest > self.latest_change):
                self.latest_change = newest
            yield finite(batch).rename_columns(list(part.headers))

    def schema(self, part: FormPart) -> pa.Schema:
        """The form's schema under the bundle's headers."""
        fields = self._schemas[part.member]
        return pa.schema([f.with_name(h) for f, h in zip(fields, part.headers, strict=True)])

    def forms_table(self, stats: WriteStats, where: str, locations: list[str]) -> pa.Table:
        """One row per form: key, name, wide table name, where it is in the bundle, rows."""
        parts = self.parts
        return pa.table(
            {
                "form_key": pa.array([p.form_key for p in parts], pa.string()),
                "form_name": pa.array([p.form_name for p in parts], pa.string()),
                "table_name": pa.array([p.member for p in parts], pa.string()),
                where: pa.array(locations, pa.string()),
                "rows": pa.array([stats.rows.get(p.member, 0) for p in parts], pa.int64()),
            }
        )

    def dictionary(self) -> pa.Table:
        """The variables dictionary (with the wide table's column names) plus the headers each
        variable's columns got in this bundle."""
        table = self.tables.read(self._specs["variables"]).read_all()
        by_key: dict[tuple[str, str], tuple[str, str | None]] = {}
        for part in self.parts:
            assert part.spec.form is not None
            header_of = dict(zip(part.columns, part.headers, strict=True))
            for col in part.spec.form.columns:
                raw = header_of[col.raw_column_name] if col.raw_column_name else None
                by_key[(col.form_key, col.variable_name)] = (header_of[col.column_name], raw)
        keys = zip(
            table.column("form_key").to_pylist(),
            table.column("variable_name").to_pylist(),
            strict=True,
        )
        found = [by_key.get(k, (None, None)) for k in keys]
        table = table.append_column(HEADER_COLUMN, pa.array([f[0] for f in found], pa.string()))
        return table.append_column(RAW_HEADER_COLUMN, pa.array([f[1] for f in found], pa.string()))

    def information(self, *, neutralised: bool) -> list[tuple[str, str]]:
        """Key/value facts of the bundle (call after the forms were read: it has the newest
        `date_modified` seen)."""
        rule = (
            "text starting with = + - @ tab or CR has a leading ' (numerals excepted)"
            if neutralised
            else "none: values are exact"
        )
        latest = self.latest_change.isoformat(sep=" ") if self.latest_change else ""
        return [
            ("study_key", self.study_key),
            ("study_name", self.study_name or ""),
            ("extraction_time_utc", self.extracted_at.isoformat(sep=" ")),
            ("latest_record_change", latest),
            ("source", self.source),
            ("headers", self.header_mode),
            ("formula_neutralisation", rule),
        ]


def information_table(items: list[tuple[str, str]]) -> pa.Table:
    """Key/value facts as a two-column table."""
    return pa.table(
        {
            "key": pa.array([k for k, _ in items], pa.string()),
            "value": pa.array([v for _, v in items], pa.string()),
        }
    )
