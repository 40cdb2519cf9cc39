"""CSV bundle: a zip with one CSV file per form, the dictionary, the forms and the information.

RFC 4180 CSV (UTF-8 without BOM, CRLF, text always quoted so an empty text `""` differs from a
missing value, which is an empty field), written by Arrow's CSV writer batch by batch.
Text cells are neutralised (`cells.neutralise_array`); numbers, dates and booleans stay as they are.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from imednet_assets.defs.sinks.bundles import archive
from imednet_assets.defs.sinks.bundles.cells import neutralise, neutralise_array
from imednet_assets.defs.sinks.bundles.content import StudyContent, WriteStats, information_table

DICTIONARY_MEMBER = "dictionary.csv"
FORMS_MEMBER = "forms.csv"
INFORMATION_MEMBER = "information.csv"
_OPTIONS = pacsv.WriteOptions(include_header=True, eol="\r\n")


def timestamp_text(values: pa.Array) -> pa.Array:
    """`YYYY-MM-DD HH:MM:SS` (fractions only when a value has them; Arrow would pad `.000000`)."""
    whole = pc.cast(values, pa.timestamp("s", values.type.tz), safe=False)
    if pc.all(pc.equal(pc.cast(whole, values.type), values)).as_py() is not False:
        return pc.cast(whole, pa.string())
    return pc.cast(values, pa.string())


def for_csv(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Text neutralised, timestamps as text, header cells neutralised too."""
    columns = []
    for col in batch.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = neutralise_array(col)
        elif pa.types.is_timestamp(col.type):
            col = timestamp_text(col)
        columns.append(col)
    names = [neutralise(n) for n in batch.schema.names]
    return pa.RecordBatch.from_arrays(columns, names=names)


def _write_table(
    zf: zipfile.ZipFile, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
) -> int:
    rows = 0
    with archive.open_member(zf, name) as raw:
        writer = None
        for batch in batches:
            ready = for_csv(batch)
            if writer is None:
                writer = pacsv.CSVWriter(raw, ready.schema, write_options=_OPTIONS)
            writer.write_batch(ready)
            rows += batch.num_rows
        if writer is None:  # no rows: the header alone
            empty = for_csv(pa.RecordBatch.from_pylist([], schema=schema))
            writer = pacsv.CSVWriter(raw, empty.schema, write_options=_OPTIONS)
        writer.close()
    return rows


def _after_member(name: str) -> None:
    """Seam after each member (tests inject a failure here); does nothing."""


def write_csv_zip(path: Path, content: StudyContent) -> WriteStats:
    """Write the study's CSV bundle to `path` (a temporary file; the caller swaps it in)."""
    stats = WriteStats()
    with archive.open_archive(path) as zf:
        for part in content.parts:
            member = f"{part.member}.csv"
            stats.rows[part.member] = _write_table(
                zf, member, content.schema(part), content.batches(part)
            )
            _after_member(member)
        dictionary = content.dictionary()
        _write_table(zf, DICTIONARY_MEMBER, dictionary.schema, dictionary.to_batches())
        forms = content.forms_table(stats, "file", [f"{p.member}.csv" for p in content.parts])
        _write_table(zf, FORMS_MEMBER, forms.schema, forms.to_batches())
        info = information_table(content.information(neutralised=True))
        _write_table(zf, INFORMATION_MEMBER, info.schema, info.to_batches())
    return stats

