"""Pure cell rules of the file bundles: formula neutralisation, column headers (variable names or
labels), Excel sheet names and cell limits, and the study's folder name.

Neutralisation (OWASP "CSV injection"): text whose first character is `=`, `+`, `-`, `@`, tab or
carriage return gets one leading `'`, so a spreadsheet shows it as text instead of running it.
Plain numerals (`-5`, `+1.5e3`) are left alone: a spreadsheet reads them as the number they are.
Only CSV and XLSX cells are neutralised; JSON lines are data for programs and keep exact values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.lake.slice import encode
from imednet_assets.defs.sinks.duckdb.naming import META_COLUMNS, RAW_SUFFIX, FormTable

HeaderMode = Literal["names", "labels"]
HEADER_MODES: tuple[HeaderMode, ...] = ("names", "labels")

#: First characters a spreadsheet may run as a formula (OWASP list).
FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")
_RISKY = r"^[=+\-@\t\r]"
# ASCII digits only, in RE2 (Arrow) and Python alike
_PLAIN_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"

#: Excel's limits: characters (UTF-16 code units) per cell, rows per sheet, sheet name length.
XLSX_MAX_CELL_CHARS = 32_767
XLSX_MAX_ROWS = 1_048_576
SHEET_NAME_MAX = 31
_SHEET_BAD = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
#: Sheet names the bundle uses itself, plus the one Excel reserves.
RESERVED_SHEETS = ("information", "dictionary", "History")


def neutralise_array(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text cells that a spreadsheet would run as a formula get a leading `'` (nulls stay null)."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    first = pc.match_substring_regex(values, _RISKY)
    if not pc.any(first).as_py():
        return values
    risky = pc.and_(first, pc.invert(pc.match_substring_regex(values, _PLAIN_NUMBER)))
    quoted = pc.binary_join_element_wise(
        pa.scalar("'", values.type), values, pa.scalar("", values.type)
    )
    return pc.if_else(risky, quoted, values)


def neutralise(text: str) -> str:
    """One text cell, neutralised by exactly the rule the columns get."""
    return neutralise_array(pa.array([text], pa.string()))[0].as_py()


def utf16_length(text: str) -> int:
    """Length as Excel counts it (characters outside the BMP count twice)."""
    return len(text.encode("utf-16-le")) // 2


def clip_for_xlsx(text: str, limit: int = XLSX_MAX_CELL_CHARS) -> tuple[str, bool]:
    """`text` fitted into one Excel cell: unchanged, or its start plus a visible marker that says
    how much was cut (the full value is in the CSV and JSON bundles). Returns (cell, was_cut)."""
    if len(text) <= limit // 2 or utf16_length(text) <= limit:
        return text, False
    marker = f" …[cut: {len(text)} characters, the full value is in the CSV and JSON bundles]"
    room = limit - utf16_length(marker)
    head, used = [], 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > room:
            break
        head.append(char)
        used += width
    return "".join(head) + marker, True


class _Unique:
    """Hands out names unique case-insensitively: the first free candidate, else `_2`, `_3`..."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken = {name.lower() for name in reserved}

    def free(self, name: str) -> bool:
        return name.lower() not in self._taken

    def take(self, candidates: Sequence[str]) -> str:
        for name in candidates:
            if self.free(name):
                self._taken.add(name.lower())
                return name
        n, last = 2, candidates[-1]
        while not self.free(f"{last}_{n}"):
            n += 1
        self._taken.add(f"{last}_{n}".lower())
        return f"{last}_{n}"


def form_headers(form: FormTable, mode: HeaderMode) -> dict[str, str]:
    """Column name -> header of a form's wide table, unique case-insensitively.

    Meta columns keep their names. `names`: a variable's column is headed by its variable name
    exactly as the EDC spells it. `labels`: by its label (stripped); a missing or blank label falls
    back to the variable name, and a label shared by several variables of the form (or equal to a
    meta column) becomes `<label> [<variable name>]` for each of them. Whatever still clashes
    takes the wide table's column name (unique by construction, see the dictionary), else gets a
    `_2`, `_3`... suffix. Main columns are named first, then raw columns as `<header>__raw`
    (the wide table's own order of naming).
    """
    if mode not in HEADER_MODES:
        raise ValueError(f"header mode must be one of {', '.join(HEADER_MODES)}, not {mode!r}")
    wanted: dict[str, str] = {}
    for col in form.columns:
        label = (col.label or "").strip()
        wanted[col.column_name] = label if mode == "labels" and label else col.variable_name
    if mode == "labels":
        counts: dict[str, int] = {}
        for name in [*META_COLUMNS, *wanted.values()]:
            counts[name.lower()] = counts.get(name.lower(), 0) + 1
        for col in form.columns:
            label = wanted[col.column_name]
            if label != col.variable_name and counts[label.lower()] > 1:
                wanted[col.column_name] = f"{label} [{col.variable_name}]"
    unique = _Unique(META_COLUMNS)
    headers = {name: name for name in META_COLUMNS}
    for col in form.columns:
        headers[col.column_name] = unique.take([wanted[col.column_name], col.column_name])
    for col in form.columns:
        if col.raw_column_name is not None:
            headers[col.raw_column_name] = unique.take(
                [headers[col.column_name] + RAW_SUFFIX, col.raw_column_name]
            )
    return headers


def _shorten_utf16(name: str, limit: int) -> str:
    """`name` within `limit` UTF-16 units; a cut name ends in `~` + 6 hex digits of its SHA-1."""
    if utf16_length(name) <= limit:
        return name
    digest = "~" + hashlib.sha1(name.encode()).hexdigest()[:6]
    head = ""
    for char in name:
        if utf16_length(head + char) > limit - len(digest):
            break
        head += char
    return head + digest


class SheetNames:
    """Excel sheet names: at most 31 characters, none of `[]:*?/\\`, no `'` at either end,
    unique case-insensitively, never one of `RESERVED_SHEETS`; deterministic for a given order."""

    def __init__(self) -> None:
        self._taken = {name.lower() for name in RESERVED_SHEETS}

    def take(self, wanted: str, suffix: str = "") -> str:
        """A name for `wanted`; `suffix` (e.g. ` (2)` for a continuation sheet) is always kept."""
        base = _SHEET_BAD.sub("_", wanted).strip("'") or "form"
        name, n = _shorten_utf16(base, SHEET_NAME_MAX - len(suffix)) + suffix, 1
        while name.lower() in self._taken:
            n += 1
            clash = f"{suffix} ({n})"
            name = _shorten_utf16(base, SHEET_NAME_MAX - len(clash)) + clash
        self._taken.add(name.lower())
        return name


def study_folder(study_key: str) -> str:
    """A study key as one safe folder/file name: percent-encoded like the lake's partitions, a
    leading `.` encoded too (no `.`/`..`, no hidden folders), long keys shortened with a digest."""
    name = encode(study_key)
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > 120:
        name = name[:111] + "~" + hashlib.sha1(study_key.encode()).hexdigest()[:8]
    return name
