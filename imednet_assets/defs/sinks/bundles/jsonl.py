"""JSON bundle: a zip with one JSON lines file per form, the dictionary and the information.

One object per record, keyed by the bundle's headers in column order; numbers and booleans as
JSON numbers and booleans, dates and timestamps as ISO 8601 text, missing values as null.
Values are exact: JSON is data for programs, not a spreadsheet, so nothing is neutralised.
A zip rather than a folder: one file that is swapped in atomically, like the CSV bundle.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from imednet_assets.defs.sinks.bundles import archive
from imednet_assets.defs.sinks.bundles.content import StudyContent, WriteStats

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


def _write_lines(out: IO[bytes], batches: Iterable[pa.RecordBatch]) -> int:
    rows = 0
    for batch in batches:
        names = batch.schema.names
        columns = [col.to_pylist() for col in batch.columns]
        lines = [
            dumps(dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)
        ]
        if lines:
            out.write(("\n".join(lines) + "\n").encode())
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
