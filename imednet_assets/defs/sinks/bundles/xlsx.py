"""XLSX bundle: an information sheet, a dictionary sheet and one sheet per form.

Written by xlsxwriter in `constant_memory` mode (each row goes to disk as soon as the next one
starts), so memory stays bounded by one Arrow batch. Typed columns are real numbers, dates and
booleans; text cells are neutralised (`cells.neutralise_array`).

Excel's limits, and what happens at them:
- a cell holds 32,767 characters: a longer text keeps its start plus a visible marker
  (`cells.clip_for_xlsx`) and is listed, with its sheet, cell, column and length, under "cut
  cells" on the information sheet; the CSV and JSON bundles hold the full value;
- a sheet holds 1,048,576 rows: a longer form continues on `<sheet> (2)`, `(3)`... (the
  information sheet lists every sheet of a form);
- dates before 1900 (outside Excel's calendar) are written as ISO text, integers beyond 2**53
  (not exact as Excel numbers) as text.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name, xl_rowcol_to_cell
from xlsxwriter.workbook import Worksheet

from imednet_assets.defs.sinks.bundles import xlsx_rows
from imednet_assets.defs.sinks.bundles.cells import (
    XLSX_MAX_ROWS,
    clip_for_xlsx,
    neutralise,
    neutralise_array,
)
from imednet_assets.defs.sinks.bundles.content import FormPart, StudyContent, WriteStats

INFORMATION_SHEET = "information"
DICTIONARY_SHEET = "dictionary"
_EXCEL_FIRST_DAY = dt.date(1900, 1, 1)
_MAX_EXACT_INT = 2**53
CUT_HEADERS = ("sheet", "cell", "column", "record_id", "characters")



def write_text(ws: Worksheet, row: int, col: int, text: str, fmt: Any = None) -> None:
    """A text cell. xlsxwriter (constant_memory) copies text that starts with `<r>` and ends with
    `</r>` into the file as raw rich-text XML: a value like `<r>&</r>` made the workbook
    unreadable. Such text goes in as a rich string of plain runs instead: escaped, read back
    whole."""
    if text.startswith("<r>") and text.endswith("</r>"):
        runs = (text[:1], text[1:2], text[2:])
        ws.write_rich_string(row, col, *runs, *(() if fmt is None else (fmt,)))
    else:
        ws.write_string(row, col, text, fmt)

class _Sheet:
    """Writes typed rows into one or more worksheets (a continuation once a sheet is full).

    Rows are rendered a batch at a time (`xlsx_rows`) and written straight into the worksheet's
    row file, as xlsxwriter would have written them; rows with a value only xlsxwriter renders
    exactly go through it cell by cell. The newest row of a sheet is held back: a sheet's last
    row goes through xlsxwriter, which writes it when the workbook closes, so cell formats are
    numbered in the order xlsxwriter numbers them (by first use) and the file is the same.
    """

    def __init__(
        self,
        book: _Book,
        name: str,
        headers: list[str],
        types: list[pa.DataType],
        max_rows: int,
        wanted: str | None = None,
    ) -> None:
        self.book = book
        self.wanted = wanted or name  # what continuation sheets are named after
        self.headers = headers
        self.writers = [book.cell_writer(t) for t in types]
        self.kinds = [xlsx_rows.kind_of(t) for t in types]
        self.formats = [book.format_of(t) for t in types]
        self.letters = [xl_col_to_name(c) for c in range(len(headers))]
        self.record_col = headers.index("record_id") if "record_id" in headers else None
        self.max_rows = max_rows
        self.names: list[str] = []
        self.counts: list[int] = []  # data rows per sheet
        self.rows = 0
        self.held: tuple[pa.RecordBatch, int] | None = None  # (one row, its sheet row)
        self._open(name)

    def _open(self, name: str) -> None:
        self.ws = self.book.wb.add_worksheet(name)
        self.names.append(name)
        self.counts.append(0)
        self.ws.freeze_panes(1, 0)
        for col, header in enumerate(self.headers):
            write_text(self.ws, 0, col, clip_for_xlsx(neutralise(header))[0], self.book.bold)
        self.row = 1

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        columns = [
            neutralise_array(col) if kind == "text" else col
            for col, kind in zip(batch.columns, self.kinds, strict=True)
        ]
        batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        start = 0
        while start < batch.num_rows:
            if self.row >= self.max_rows:
                self._release()
                self._open(self.book.names.take(self.wanted, f" ({len(self.names) + 1})"))
            take = min(batch.num_rows - start, self.max_rows - self.row)
            if self.held is not None:
                self._rows(*self.held)
            self._rows(batch.slice(start, take - 1), self.row)
            self.held = (batch.slice(start + take - 1, 1), self.row + take - 1)
            self.row += take
            self.rows += take
            self.counts[-1] += take
            start += take

    def finish(self) -> None:
        """The sheet's last row, through xlsxwriter (call once every batch is written)."""
        self._release()

    def _release(self) -> None:
        if self.held is not None:
            rows, first = self.held
            self.held = None
            self._by_cell(rows, first)

    def _rows(self, rows: pa.RecordBatch, first: int) -> None:
        """Rows `first`... of the current sheet: rendered, except runs of slow rows."""
        if rows.num_rows == 0:
            return
        cells = [xlsx_rows.render(kind, col)
                 for kind, col in zip(self.kinds, rows.columns, strict=True)]
        slow = np.logical_or.reduce([c.slow for c in cells])
        if not slow.any():
            self._rendered(cells, 0, rows.num_rows, first)
            return
        # runs of equal slowness: [start, end)
        edges = np.flatnonzero(np.diff(slow.astype(np.int8))) + 1
        bounds = [0, *edges.tolist(), rows.num_rows]
        for start, end in itertools.pairwise(bounds):
            if slow[start]:
                self._by_cell(rows.slice(start, end - start), first + start)
            else:
                self._rendered(cells, start, end, first + start)

    def _rendered(self, cells: list[xlsx_rows.Cells], start: int, end: int, first: int) -> None:
        """Rows [start, end) of rendered `cells`, written into the worksheet's row file."""
        n = end - start
        valid = [_valid(c.value.slice(start, n)) for c in cells]
        present = [np.flatnonzero(v) for v in valid]
        used = [c for c, rows in enumerate(present) if len(rows)]
        if not used:
            return  # no cell at all: xlsxwriter writes no row either
        last_row = max(int(present[c][-1]) for c in used) + first
        first_row = min(int(present[c][0]) for c in used) + first
        ws = self.ws
        # what xlsxwriter's write_* would do: track the used range, write the row in progress
        ws._check_dimensions(first_row, used[0])
        ws._check_dimensions(last_row, used[-1])
        if first_row > ws.previous_row:
            ws._write_single_row(first_row)
        # formats get their number at first use, cell by cell in row order
        for _, c in sorted((int(present[c][0]), c) for c in used if cells[c].formatted):
            self.formats[c]._get_xf_index()
        numbers = xlsx_rows.row_numbers(first, n)
        pieces: list[pa.Array | str] = ['<row r="', numbers, '">']
        for c in used:
            xf = self.formats[c]._get_xf_index() if cells[c].formatted else None
            pieces.append(pc.binary_join_element_wise(
                f'<c r="{self.letters[c]}', numbers, *cells[c].pieces(start, n, xf), ""))
        pieces.append("</row>")
        rows = pc.binary_join_element_wise(*pieces, "", null_handling="skip")
        if not all(valid[c].all() for c in used):  # a row without cells is not written
            rows = pc.filter(rows, np.logical_or.reduce([valid[c] for c in used]))
        ws.fh.flush()
        ws.fh.buffer.write(xlsx_rows.concatenated(rows))
        ws.previous_row = last_row

    def _by_cell(self, rows: pa.RecordBatch, first: int) -> None:
        """Rows `first`... of the current sheet through xlsxwriter, cell by cell."""
        columns = [col.to_pylist() for col in rows.columns]
        record_ids = columns[self.record_col] if self.record_col is not None else None
        for r in range(rows.num_rows):
            for c, write in enumerate(self.writers):
                value = columns[c][r]
                if value is not None:
                    cut = write(self.ws, first + r, c, value)
                    if cut:
                        rid = record_ids[r] if record_ids is not None else None
                        self.book.cut(self.ws.name, first + r, c, self.headers[c], rid, value)


def _valid(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)


class _Book:
    """The workbook with its formats and the list of cut cells."""

    def __init__(self, path: Path, content: StudyContent) -> None:
        self.wb = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": str(path.parent),
                # every value goes through an explicit typed write_*: no guessing from text
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        # the creation time is the extraction time: the same lake gives the same file
        self.wb.set_properties(
            {
                "title": f"{content.study_key} forms",
                "created": content.extracted_at,
                "comments": "Written by imednet-assets from the iMednet lake",
            }
        )
        self.names = content.sheet_names
        self.bold = self.wb.add_format({"bold": True})
        self.date = self.wb.add_format({"num_format": "yyyy-mm-dd"})
        self.datetime = self.wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.cuts: list[tuple[str, str, str, Any, int]] = []

    def cut(self, sheet: str, row: int, col: int, header: str, record_id: Any, text: str) -> None:
        self.cuts.append((sheet, xl_rowcol_to_cell(row, col), header, record_id, len(text)))

    def cell_writer(self, t: pa.DataType) -> Callable[[Worksheet, int, int, Any], bool]:
        """How one column's values are written; returns whether the value was cut."""

        def text(ws: Worksheet, r: int, c: int, v: Any) -> bool:
            cell, cut = clip_for_xlsx(str(v))
            write_text(ws, r, c, cell)
            return cut

        def number(ws: Worksheet, r: int, c: int, v: Any) -> bool:
            if isinstance(v, int) and abs(v) > _MAX_EXACT_INT:
                return text(ws, r, c, str(v))
            ws.write_number(r, c, v)
            return False

        def boolean(ws: Worksheet, r: int, c: int, v: Any) -> bool:
            ws.write_boolean(r, c, v)
            return False

        def moment(fmt: Any) -> Callable[[Worksheet, int, int, Any], bool]:
            def write(ws: Worksheet, r: int, c: int, v: Any) -> bool:
                day = v.date() if isinstance(v, dt.datetime) else v
                if day < _EXCEL_FIRST_DAY:
                    return text(ws, r, c, v.isoformat(sep=" ") if fmt is self.datetime
                                else v.isoformat())
                if isinstance(v, dt.datetime) and v.tzinfo is not None:
                    v = v.astimezone(dt.UTC).replace(tzinfo=None)
                ws.write_datetime(r, c, v, fmt)
                return False

            return write

        if pa.types.is_boolean(t):
            return boolean
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return number
        if pa.types.is_timestamp(t):
            return moment(self.datetime)
        if pa.types.is_date(t):
            return moment(self.date)
        return text

    def format_of(self, t: pa.DataType) -> Any:
        """The cell format of a column of type `t` (dates and times), else None."""
        if pa.types.is_timestamp(t):
            return self.datetime
        if pa.types.is_date(t):
            return self.date
        return None

    def table(self, name: str, table: pa.Table) -> None:
        sheet = _Sheet(self, name, table.column_names, list(table.schema.types), XLSX_MAX_ROWS)
        for batch in table.to_batches():
            sheet.write(batch)
        sheet.finish()


def _after_sheet(name: str) -> None:
    """Seam after each form's sheet(s) (tests inject a failure here); does nothing."""


def write_xlsx(
    path: Path, content: StudyContent, *, max_rows: int = XLSX_MAX_ROWS
) -> WriteStats:
    """Write the study's XLSX bundle to `path` (a temporary file; the caller swaps it in).

    `max_rows` (header included) is Excel's row limit; tests lower it to show continuation sheets.
    """
    stats = WriteStats()
    book = _Book(path, content)
    try:
        info = book.wb.add_worksheet(INFORMATION_SHEET)  # first tab, filled in last
        book.table(DICTIONARY_SHEET, content.dictionary())
        for part in content.parts:
            sheet = _write_form(book, part, content, max_rows, stats)
            stats.rows[part.member] = sheet.rows
            stats.sheets[part.member] = list(zip(sheet.names, sheet.counts, strict=True))
            _after_sheet(part.sheet)
        _write_information(book, info, content, stats)
        stats.cut_cells = len(book.cuts)
    finally:
        book.wb.close()
    return stats


def _write_form(
    book: _Book, part: FormPart, content: StudyContent, max_rows: int, stats: WriteStats
) -> _Sheet:
    schema = content.schema(part)
    sheet = _Sheet(
        book, part.sheet, list(part.headers), list(schema.types), max_rows, part.form_key
    )
    for batch in content.batches(part):
        sheet.write(batch)
    sheet.finish()
    return sheet


def _write_information(
    book: _Book, ws: Worksheet, content: StudyContent, stats: WriteStats
) -> None:
    """Facts, then one row per sheet of every form, then the cut cells (all neutralised)."""
    row = 0

    def line(*values: Any, fmt: Any = None) -> None:
        nonlocal row
        for col, value in enumerate(values):
            if isinstance(value, int):
                ws.write_number(row, col, value, fmt)
            elif value is not None:
                write_text(ws, row, col, clip_for_xlsx(neutralise(str(value)))[0], fmt)
        row += 1

    for key, value in content.information(neutralised=True):
        line(key, value)
    line("cut_cells", len(book.cuts))
    row += 1
    line("form_key", "form_name", "table_name", "sheet", "rows", fmt=book.bold)
    for part in content.parts:
        for name, rows in stats.sheets[part.member]:
            line(part.form_key, part.form_name, part.member, name, rows)
    row += 1
    line(*CUT_HEADERS, fmt=book.bold)
    for cut in book.cuts:
        line(*cut)

