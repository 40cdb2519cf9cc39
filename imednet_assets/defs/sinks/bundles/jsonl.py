"""JSON bundle: a zip with one JSON lines file per form, the dictionary and the information.

One object per record, keyed by the bundle's headers in column order; numbers and booleans as
JSON numbers and booleans, dates and timestamps as ISO 8601 text, missing values as null.
Values are exact: JSON is data for programs, not a spreadsheet, so nothing is neutralised.
A zip rather than a folder: one file that is swapped in atomically, like the CSV bundle.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.sinks.bundles import archive
from imednet_assets.defs.sinks.bundles.content import StudyContent, WriteStats
from imednet_assets.defs.sinks.bundles.xlsx_rows import concatenated

DICTIONARY_MEMBER = "dictionary.jsonl"
INFORMATION_MEMBER = "information.json"


def _default(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    """Compact UTF-8 JSON; NaN is refused (the content turned it into null already)."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), default=_default, allow_nan=False
    )


_FIRST_DAY = -719_162  # 0001-01-01, days from 1970-01-01
_LAST_DAY = 2_932_896  # 9999-12-31
_DAY_US = 86_400_000_000
#: text JSON escapes beyond `"` and `\\` (those are replaced in Arrow; these go through `dumps`)
_CONTROL = r"[\x00-\x1f]"


def _python(values: pa.Array, slow: pa.Array | None = None) -> pa.Array:
    """`dumps` of each value (of the `slow` ones only, the others left null)."""
    if slow is None:
        return pa.array([dumps(v) for v in values.to_pylist()], pa.string())
    slow = pc.fill_null(slow, False)
    if not pc.any(slow).as_py():
        return pa.nulls(len(values), pa.string())
    texts = [dumps(v) for v in pc.filter(values, slow).to_pylist()]
    return pc.replace_with_mask(pa.nulls(len(values), pa.string()), slow,
                                pa.array(texts, pa.string()))


def _quoted(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', text, '"', "")


def _text(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    escaped = values
    if pc.any(pc.match_substring_regex(values, r'["\\]')).as_py():
        escaped = pc.replace_substring(escaped, "\\", "\\\\")
        escaped = pc.replace_substring(escaped, '"', '\\"')
    return _quoted(escaped), pc.match_substring_regex(values, _CONTROL)


def _float(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    values = pc.cast(values, pa.float64())
    texts = [None if v is None or not math.isfinite(v) else repr(v) for v in values.to_pylist()]
    return pa.array(texts, pa.string()), pc.invert(pc.is_finite(values))  # NaN: dumps refuses it


def _date(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    days = pc.cast(values, pa.int32())
    slow = pc.or_(pc.less(days, _FIRST_DAY), pc.greater(days, _LAST_DAY))
    return _quoted(pc.cast(values, pa.string())), slow


def _timestamp(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """`datetime.isoformat()`: `T` between date and time, microseconds only when not zero."""
    if values.type.tz is not None:  # an aware time keeps its offset: Python writes it
        return pa.nulls(len(values), pa.string()), pc.is_valid(values)
    try:
        values = pc.cast(values, pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.nulls(len(values), pa.string()), pc.is_valid(values)
    micros = pc.cast(values, pa.int64())
    slow = pc.or_(pc.less(micros, _FIRST_DAY * _DAY_US),
                  pc.greater_equal(micros, (_LAST_DAY + 1) * _DAY_US))
    text = pc.utf8_replace_slice(pc.cast(values, pa.string()), 10, 11, "T")
    text = pc.replace_substring_regex(text, r"\.000000$", "")
    return _quoted(text), slow


def json_values(values: pa.Array) -> pa.Array:
    """Each value as `dumps` writes it (`null` for a missing one), rendered by Arrow where
    Arrow renders it alike, else by `dumps`."""
    t = values.type
    fast: pa.Array | None
    slow: pa.Array | None = None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        fast, slow = _text(values)
    elif pa.types.is_boolean(t):
        fast = pc.if_else(values, "true", "false")
    elif pa.types.is_integer(t):
        fast = pc.cast(values, pa.string())
    elif pa.types.is_floating(t):
        fast, slow = _float(values)
    elif pa.types.is_date32(t):
        fast, slow = _date(values)
    elif pa.types.is_timestamp(t):
        fast, slow = _timestamp(values)
    else:
        fast = None
    if fast is None:
        return _python(values)
    if slow is not None and pc.any(pc.fill_null(slow, False)).as_py():
        fast = pc.if_else(pc.fill_null(slow, False), _python(values, slow), fast)
    return pc.fill_null(fast, "null")


def _lines_by_value(batch: pa.RecordBatch) -> bytes:
    """Lines the plain way, one `dumps` per row (a batch without columns or with a repeated name:
    a dict keeps one key of a name)."""
    names = batch.schema.names
    columns = [col.to_pylist() for col in batch.columns]
    lines = [dumps(dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _lines(batch: pa.RecordBatch) -> bytes | memoryview:
    """One line per row, `dumps` of the row's {header: value}, keys in column order."""
    names = batch.schema.names
    if not names or len(set(names)) != len(names):
        return _lines_by_value(batch)
    pieces: list[pa.Array | str] = []
    for i, (name, col) in enumerate(zip(names, batch.columns, strict=True)):
        pieces += [("{" if i == 0 else ",") + dumps(name) + ":", json_values(col)]
    return concatenated(pc.binary_join_element_wise(*pieces, "}\n", ""))


def _write_lines(out: IO[bytes], batches: Iterable[pa.RecordBatch]) -> int:
    rows = 0
    for batch in batches:
        if batch.num_rows:
            out.write(_lines(batch))
        rows += batch.num_rows
    return rows


def _after_member(name: str) -> None:
    """Seam after each member (tests inject a failure here); does nothing."""


def write_jsonl_zip(path: Path, content: StudyContent) -> WriteStats:
    """Write the study's JSON lines bundle to `path` (a temporary file; the caller swaps it in)."""
    stats = WriteStats()
    with archive.open_archive(path) as zf:
        for part in content.parts:
            member = f"{part.member}.jsonl"
            with archive.open_member(zf, member) as out:
                stats.rows[part.member] = _write_lines(out, content.batches(part))
            _after_member(member)
        with archive.open_member(zf, DICTIONARY_MEMBER) as out:
            _write_lines(out, content.dictionary().to_batches())
        forms = content.forms_table(stats, "file", [f"{p.member}.jsonl" for p in content.parts])
        information = {
            **dict(content.information(neutralised=False)),
            "forms": forms.to_pylist(),
        }
        with archive.open_member(zf, INFORMATION_MEMBER) as out:
            out.write((dumps(information) + "\n").encode())
    return stats
