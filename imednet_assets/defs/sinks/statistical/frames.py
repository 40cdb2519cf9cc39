"""One dataset's rows as the pandas frame pyreadstat writes, and its rows of the mapping.

Cells keep the DuckDB table's types: numbers as doubles (NaN and infinities, which no format
holds, as missing: the `__raw` twin keeps the text), dates as dates, timestamps as datetimes,
booleans as 1/0. Text over the format's value limit is split into pieces: `<name>`, `<name>2`,
... (see `names.split_text`); a shorter value has empty further pieces. Missing text is written
as empty text: none of the formats tells them apart (and pyreadstat fails on a missing Stata
strL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.sinks.bundles.content import finite
from imednet_assets.defs.sinks.statistical.formats import FormatRules
from imednet_assets.defs.sinks.statistical.layout import STORAGE_TEXT, Column, Dataset
from imednet_assets.defs.sinks.statistical.names import Unsplittable, short_label, split_text

#: The mapping's columns (names short enough for every format) and what they say.
MAPPING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kind", "dataset or variable"),
    ("dataset", "dataset name in this format"),
    ("table", "DuckDB table"),
    ("origname", "original name (form key, EDC variable)"),
    ("column", "DuckDB column"),
    ("label", "label (dictionary)"),
    ("shortnm", "name in this format"),
    ("shortlbl", "label in this format"),
    ("part", "piece of a split text (1 = first)"),
    ("parts", "pieces of the column"),
    ("storage", "text, number, date, datetime, boolean"),
)


class SplitRefused(Exception):
    """A value that cannot be written; the message names study, form, record and variable."""


@dataclass
class Frame:
    """A dataset ready for pyreadstat: the frame, its labels, and its mapping rows."""

    frame: pd.DataFrame
    labels: list[str]
    mapping: list[dict[str, Any]] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # pyreadstat's variable_format
    split_values: int = 0  # values written in more than one piece


def _pieces(values: pa.ChunkedArray | pa.Array, rules: FormatRules, where: str,
            keys: Sequence[Any]) -> list[list[str | None]]:
    """Each value's pieces (only the values over the limit are cut)."""
    limit = rules.value_max
    assert limit is not None
    lengths = pc.binary_length(values).to_pylist()
    texts = values.to_pylist()
    out: list[list[str | None]] = []
    for i, (text, size) in enumerate(zip(texts, lengths, strict=True)):
        if size is None or size <= limit:
            out.append([text])
            continue
        try:
            out.append(list(split_text(text, limit, rules.keeps_trailing_blanks)))
        except Unsplittable as err:
            raise SplitRefused(f"{where}, record {keys[i]}: a {size}-byte text cannot be "
                               f"split for {rules.what}: {err}") from None
    return out


def _values(values: pa.ChunkedArray, storage: str) -> Any:
    if storage in ("number", "boolean"):
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    if storage == "datetime":
        if values.type.tz is not None:  # as UTC wall time: the formats know no time zones
            values = pc.cast(values, pa.timestamp(values.type.unit))
        return values.to_pandas()
    if storage == "date":
        return pd.Series(values.to_pylist(), dtype=object)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    return pd.Series(pc.fill_null(values, "").to_pylist(), dtype=object)


def _place(dataset: Dataset) -> str:
    is_form = dataset.spec is not None and dataset.spec.kind == "form"
    return f"form {dataset.original}" if is_form else f"table {dataset.table}"


def _row(dataset: Dataset, column: Column, short: str, label: str, part: int,
         parts: int) -> dict[str, Any]:
    return {"kind": "variable", "dataset": dataset.name, "table": dataset.table,
            "origname": column.original, "column": column.source, "label": column.label,
            "shortnm": short, "shortlbl": label, "part": part, "parts": parts,
            "storage": column.storage}


def dataset_row(dataset: Dataset) -> dict[str, Any]:
    """The mapping row of the dataset itself (form key -> dataset name)."""
    return {"kind": "dataset", "dataset": dataset.name, "table": dataset.table,
            "origname": dataset.original, "column": None, "label": dataset.label,
            "shortnm": dataset.name, "shortlbl": dataset.short_label, "part": None,
            "parts": None, "storage": None}


def build_frame(dataset: Dataset, table: pa.Table, rules: FormatRules, study: str) -> Frame:
    """The dataset's frame for `rules`' format from its DuckDB table (columns in its order)."""
    table = pa.Table.from_batches([finite(b) for b in table.to_batches()], schema=table.schema)
    keys: list[Any] = (table.column(dataset.key_column).to_pylist()
                       if dataset.key_column else list(range(1, table.num_rows + 1)))
    data: dict[str, Any] = {}
    labels: list[str] = []
    out = Frame(pd.DataFrame(), labels)
    split_later: list[tuple[Column, list[list[str | None]], int]] = []
    for column in dataset.columns:
        values = table.column(column.source)
        if column.storage == STORAGE_TEXT and rules.value_max is not None:
            where = f"study {study}, {_place(dataset)}, variable {column.original}"
            pieces = _pieces(values, rules, where, keys)
            parts = max((len(p) for p in pieces), default=1)
            data[column.short] = pd.Series([p[0] or "" for p in pieces], dtype=object)
            if parts > 1:
                split_later.append((column, pieces, parts))
                out.split_values += sum(1 for p in pieces if len(p) > 1)
        elif column.storage == "date" and values.null_count == len(values):
            # no value to tell pyreadstat it is a date: a missing number in a date format
            data[column.short] = pd.Series([float("nan")] * len(values), dtype="float64")
            out.formats[column.short] = rules.date_format
            parts = 1
        else:
            data[column.short] = _values(values, column.storage)
            parts = 1
        labels.append(column.short_label)
        out.mapping.append(_row(dataset, column, column.short, column.short_label, 1, parts))
    # the further pieces are named after every whole column and written right after their first
    order = [c.short for c in dataset.columns]
    for column, pieces, parts in split_later:
        at = order.index(column.short)
        for part in range(2, parts + 1):
            short = dataset.names.take_part(column.short, part)
            label = short_label(column.label, rules.label_max, f" ({part})")
            data[short] = pd.Series([p[part - 1] if len(p) >= part else "" for p in pieces],
                                    dtype=object)
            at += 1
            order.insert(at, short)
            labels.insert(at, label)
            out.mapping.append(_row(dataset, column, short, label, part, parts))
    out.frame = pd.DataFrame({name: data[name] for name in order}, columns=order)
    out.labels = labels
    out.mapping.sort(key=lambda r: order.index(r["shortnm"]))
    return out


def mapping_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The mapping rows as a table (the mapping dataset's and the CSV sheet's rows)."""
    types = {"part": pa.int64(), "parts": pa.int64()}
    return pa.table({name: pa.array([r[name] for r in rows], types.get(name, pa.string()))
                     for name, _ in MAPPING_COLUMNS})
