"""Sheet rows as xlsxwriter writes them, made a batch at a time by Arrow, not a cell at a time.

xlsxwriter spends about 15 µs of Python per cell (checks, a tuple per cell, attribute escaping, a
`write` per fragment): most of a large study's XLSX time. Here each column of a batch becomes the
XML fragments xlsxwriter would write for its cells (`constant_memory` mode: inline strings), with
Arrow's string kernels, and each row the concatenation of its cells, byte for byte what
xlsxwriter writes (the bundle tests and `xlsx_rows` tests hold both to that).

A value only xlsxwriter renders exactly is "slow" and its whole row goes through xlsxwriter cell by
cell: text that may need clipping, that holds control characters, `_xHHHH_` or U+FFFE/U+FFFF (its
escapes), or starts with `<r>` (its rich-string pass-through); integers beyond 2**53; non-finite
floats; dates and times near or outside Excel's calendar; types without a fast rendering.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.sinks.bundles.cells import XLSX_MAX_CELL_CHARS

Kind = Literal["text", "int", "float", "bool", "date", "datetime", "other"]

#: The characters Python's `\s` matches (str.isspace): xlsxwriter adds `xml:space="preserve"` to
#: text that starts or ends with one. RE2's `\s` is ASCII only, so the class is spelled out.
PYTHON_SPACES = (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680,
                 *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
_SPACE = "[" + "".join(f"\\x{{{c:X}}}" for c in PYTHON_SPACES) + "]"
_PRESERVE = f"^{_SPACE}|{_SPACE}$"
#: What xlsxwriter escapes or passes through itself (a superset is fine: those rows are slow).
_SPECIAL = r"[\x00-\x08\x0b-\x1f\x{FFFE}\x{FFFF}]|_x[0-9a-fA-F]{4}_|^<r>"
#: Text up to this many characters is never clipped (`cells.clip_for_xlsx`, xlsxwriter alike).
FAST_TEXT_CHARS = XLSX_MAX_CELL_CHARS // 2
_MAX_EXACT_INT = 2**53
_DAY_US = 86_400_000_000
_EXCEL_EPOCH_DAYS = 25_568  # 1899-12-31 (Excel's day 0) to 1970-01-01
# dates before 1900-01-01 are ISO text; datetimes near it (any time zone) and dates past 9999
# go through xlsxwriter too
_FIRST_DAY = -25_567  # 1900-01-01
_LAST_DAY = 2_932_896  # 9999-12-31
_FIRST_US = (_FIRST_DAY + 2) * _DAY_US  # 1900-01-03
_LAST_US = (_LAST_DAY - 1) * _DAY_US  # 9999-12-30


def kind_of(t: pa.DataType) -> Kind:
    """How a column of type `t` is rendered (after `cells.neutralise_array` for text)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "datetime"
    return "other"


@dataclass(frozen=True)
class Cells:
    """One column of a batch: cell `i` is `<c r="{ref}` + head + opening[i] + value[i] + tail,
    no cell where value is null; `slow[i]`: only xlsxwriter renders it exactly."""

    kind: Kind
    value: pa.Array
    slow: np.ndarray
    opening: pa.Array | str = ""  # text: `<t>` or, per cell, `<t xml:space="preserve">`

    @property
    def formatted(self) -> bool:
        """Whether the cell carries the column's number format (`s="{xf}"`)."""
        return self.kind in ("date", "datetime")

    def pieces(self, start: int, n: int, xf: int | None = None) -> list[pa.Array | str]:
        """What follows the cell reference, for rows [start, start + n)."""
        value = self.value.slice(start, n)
        if self.kind == "text":
            opening = self.opening
            if isinstance(opening, str):
                return [f'" t="inlineStr"><is>{opening}', value, "</t></is></c>"]
            return ['" t="inlineStr"><is>', opening.slice(start, n), value, "</t></is></c>"]
        if self.kind == "bool":
            return ['" t="b"><v>', value, "</v></c>"]
        if self.formatted:
            return [f'" s="{xf}"><v>', value, "</v></c>"]
        return ['"><v>', value, "</v></c>"]


def _mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _none(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _text(col: pa.Array) -> Cells:
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    slow = _mask(pc.or_(pc.greater(pc.utf8_length(col), FAST_TEXT_CHARS),
                        pc.match_substring_regex(col, _SPECIAL)))
    escaped = col
    if pc.any(pc.match_substring_regex(col, "[&<>]")).as_py():
        for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
            escaped = pc.replace_substring(escaped, char, entity)
    preserve = pc.match_substring_regex(col, _PRESERVE)
    if not pc.any(preserve).as_py():
        return Cells("text", escaped, slow, "<t>")
    opening = pc.if_else(preserve, '<t xml:space="preserve">', "<t>")
    return Cells("text", escaped, slow, opening)


def _int(col: pa.Array) -> Cells:
    slow = pc.greater(col, _MAX_EXACT_INT)
    if pa.types.is_signed_integer(col.type):
        slow = pc.or_(slow, pc.less(col, -_MAX_EXACT_INT))
    return Cells("int", pc.cast(col, pa.string()), _mask(slow))


def _formatted(numbers: list[float], valid: np.ndarray) -> pa.Array:
    """`{:.16G}` as xlsxwriter formats a number (no Arrow kernel formats alike); null where not
    `valid`."""
    texts = pa.array(map(format, numbers, itertools.repeat(".16G")), pa.string(),
                     size=len(numbers))
    if valid.all():
        return texts
    return pc.if_else(pa.array(valid), texts, pa.scalar(None, pa.string()))


def _float(col: pa.Array) -> Cells:
    col = pc.cast(col, pa.float64())
    slow = _mask(pc.invert(pc.is_finite(col)))
    valid = _mask(pc.is_valid(col))
    numbers = np.asarray(pc.fill_null(col, 0.0).to_numpy(zero_copy_only=False), np.float64)
    return Cells("float", _formatted(numbers.tolist(), valid), slow)


def _bool(col: pa.Array) -> Cells:
    return Cells("bool", pc.if_else(col, "1", "0"), _none(len(col)))


def _date(col: pa.Array) -> Cells:
    days = pc.cast(col, pa.int32()).cast(pa.int64())
    slow = _mask(pc.or_(pc.less(days, _FIRST_DAY), pc.greater(days, _LAST_DAY)))
    serial = pc.add(days, _EXCEL_EPOCH_DAYS)
    serial = pc.if_else(pc.greater(serial, 59), pc.add(serial, 1), serial)  # Excel's 1900-02-29
    return Cells("date", pc.cast(serial, pa.string()), slow)


def _datetime(col: pa.Array) -> Cells:
    """xlsxwriter's serial: whole days since 1899-12-31 plus (seconds + microseconds / 1e6) /
    86400, in the same float operations, plus Excel's 1900-02-29 (UTC, as the cell writer
    converts an aware time)."""
    try:
        micros = pc.cast(pc.cast(col, pa.timestamp("us", col.type.tz)), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # nanoseconds that are not whole µs
        return _other(col)
    slow = _mask(pc.or_(pc.less(micros, _FIRST_US), pc.greater(micros, _LAST_US)))
    valid = _mask(pc.is_valid(micros))
    us = np.asarray(pc.fill_null(micros, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    us = np.where(slow, 0, us) + _EXCEL_EPOCH_DAYS * _DAY_US
    days, rest = np.divmod(us, _DAY_US)
    seconds, micro = np.divmod(rest, 1_000_000)
    serial = days.astype(np.float64) + (
        seconds.astype(np.float64) + micro.astype(np.float64) / 1e6) / 86400
    serial = np.where(serial > 59, serial + 1, serial)
    return Cells("datetime", _formatted(serial.tolist(), valid), slow)


def _other(col: pa.Array) -> Cells:
    return Cells("other", pa.nulls(len(col), pa.string()), _mask(pc.is_valid(col)))


_RENDER = {"text": _text, "int": _int, "float": _float, "bool": _bool, "date": _date,
           "datetime": _datetime, "other": _other}


def render(kind: Kind, col: pa.Array) -> Cells:
    """The cells of one column of a batch."""
    return _RENDER[kind](col)


def row_numbers(first: int, n: int) -> pa.Array:
    """Excel row numbers (1-based) of rows `first`, `first + 1`, ... (0-based) as text."""
    return pc.cast(pa.array(np.arange(first + 1, first + n + 1, dtype=np.int64)), pa.string())


def concatenated(values: pa.Array) -> memoryview:
    """The UTF-8 bytes of every (non-null) value of a string array, one after the other."""
    if len(values) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=len(values) + 1,
                            offset=values.offset * 4)
    data = values.buffers()[2]
    if data is None:
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]):int(offsets[-1])]
