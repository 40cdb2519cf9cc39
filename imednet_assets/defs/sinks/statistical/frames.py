"""One dataset's rows as the pandas frame pyreadstat writes, and its rows of the mapping.

Cells keep the DuckDB table's types: numbers as doubles (NaN and infinities, which no format
holds, as missing, and in SAS transport numbers beyond its IBM floats' range too, counted: the
`__raw` twin keeps the text), dates and timestamps as dates and datetimes (handed to
pyreadstat as the numbers the format stores, in its date formats), booleans as 1/0. Missing
text is written as empty text: none of the formats tells them apart (and pyreadstat fails on
a missing Stata strL). A text holding a NUL character is refused: ReadStat would end it there
without a word.

Text over the format's value limit is split into pieces: `<name>`, `<name>2`, ... (see
`names.split_text`); a shorter value has empty further pieces. Text columns stay Arrow-backed
(`pd.ArrowDtype`): pyreadstat writes the same bytes from them without a Python object per cell,
which halves the memory of a large form.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
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
_TEXT = pd.ArrowDtype(pa.string())
#: What a boolean's 1 and 0 say, where the format has value labels (SPSS, Stata).
BOOLEAN_LABELS = {1.0: "true", 0.0: "false"}


class ValueRefused(Exception):
    """A value that cannot be written; the message names study, form, record and variable."""


@dataclass
class Frame:
    """A dataset ready for pyreadstat: the frame, its labels, formats and mapping rows."""

    frame: pd.DataFrame
    labels: list[str]
    mapping: list[dict[str, Any]] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # pyreadstat's variable_format
    value_labels: dict[str, dict[float, str]] = field(default_factory=dict)
    split_values: int = 0  # values written in more than one piece
    out_of_range: int = 0  # numbers the format cannot hold, written as missing


def _text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


def _text_series(values: pa.ChunkedArray) -> pd.Series:
    return pd.Series(pc.fill_null(_text(values), ""), dtype=_TEXT)


def in_range(values: pa.ChunkedArray, rules: FormatRules) -> tuple[pa.ChunkedArray, int]:
    """Numbers the format cannot hold as missing, and how many there were."""
    if rules.number_range is None:
        return values, 0
    low, high = rules.number_range
    size = pc.abs(values)
    outside = pc.or_(pc.greater(size, high), pc.and_(pc.greater(size, 0), pc.less(size, low)))
    count = pc.sum(outside).as_py() or 0
    if count:
        values = pc.if_else(outside, pa.scalar(None, values.type), values)
    return values, count


def _values(values: pa.ChunkedArray, column: Column, rules: FormatRules) -> tuple[Any, str | None]:
    """A column that needs no split, as pyreadstat takes it, and its format when one is due."""
    storage = column.storage
    if storage in ("number", "boolean"):
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), None
    if storage == "datetime":
        return _datetime_numbers(values, rules), rules.datetime_format
    if storage == "date":
        if values.null_count == len(values):
            # no value tells pyreadstat it is a date: missing numbers in a date format
            return pd.Series([float("nan")] * len(values), dtype="float64"), rules.date_format
        return _date_numbers(values, rules), rules.value_date_format
    return _text_series(values), None


def _datetime_numbers(values: pa.ChunkedArray, rules: FormatRules) -> np.ndarray:
    """Datetimes (UTC wall time, microseconds) as the format's seconds (or milliseconds) since
    its epoch, missing as NaN: the arithmetic pyreadstat does, without its copy of the frame."""
    micros = pc.cast(pc.cast(values, pa.timestamp("us")), pa.int64())
    missing = pc.is_null(micros).to_numpy(zero_copy_only=False)
    micros = pc.fill_null(micros, 0).to_numpy()
    whole = micros // 1_000_000 + rules.epoch_offset_days * 86_400
    fraction = micros % 1_000_000
    scale = rules.datetime_scale
    numbers = whole.astype("float64") * scale + fraction.astype("float64") / 1e6 * scale
    numbers[missing] = np.nan
    return numbers


def _date_numbers(values: pa.ChunkedArray, rules: FormatRules) -> np.ndarray:
    """Dates as the format's days (SPSS: seconds) since its epoch, missing as NaN."""
    days = pc.cast(pc.cast(values, pa.date32()), pa.int32()).to_numpy(zero_copy_only=False)
    return (days.astype("float64") + rules.epoch_offset_days) * rules.date_unit_seconds


def _pieces(values: pa.ChunkedArray, rules: FormatRules, where: str,
            keys: pa.ChunkedArray | None) -> list[list[str]]:
    """Each value's pieces (only the values over the limit are cut)."""
    limit = rules.value_max
    assert limit is not None
    out: list[list[str]] = []
    for i, text in enumerate(_text(values).to_pylist()):
        size = len(text.encode()) if text else 0
        if size <= limit:
            out.append([text or ""])
            continue
        try:
            out.append(split_text(text, limit, rules.keeps_trailing_blanks))
        except Unsplittable as err:
            key = keys[i].as_py() if keys is not None else i + 1
            raise ValueRefused(f"{where}, record {key}: a {size}-byte text cannot be split for "
                               f"{rules.what}: {err}") from None
    return out


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


def _refuse_nul(values: pa.ChunkedArray, where: str, keys: pa.ChunkedArray | None) -> None:
    """Refuse a text with a NUL character (the formats' C strings would end there)."""
    found = pc.fill_null(pc.match_substring(_text(values), "\x00"), False)
    if not pc.any(found).as_py():
        return
    i = pc.index(found, True).as_py()
    key = keys[i].as_py() if keys is not None else i + 1
    raise ValueRefused(f"{where}, record {key}: the text holds a NUL character, which the "
                       "format would cut off there")


def _too_long(values: pa.ChunkedArray, limit: int | None) -> bool:
    if limit is None or len(values) == 0:
        return False
    longest = pc.max(pc.binary_length(_text(values))).as_py()
    return longest is not None and longest > limit


def build_frame(dataset: Dataset, table: pa.Table, rules: FormatRules, study: str) -> Frame:
    """The dataset's frame for `rules`' format from its DuckDB table (columns in its order,
    the further pieces of a split column right after its first)."""
    table = pa.Table.from_batches([finite(b) for b in table.to_batches()], schema=table.schema)
    keys = table.column(dataset.key_column) if dataset.key_column else None
    out = Frame(pd.DataFrame(), [])
    data: dict[str, Any] = {}
    split: list[tuple[Column, list[list[str]]]] = []
    for column in dataset.columns:
        values = table.column(column.source)
        if column.storage == "number":
            values, dropped = in_range(pc.cast(values, pa.float64()), rules)
            out.out_of_range += dropped
        where = f"study {study}, {_place(dataset)}, variable {column.original}"
        if column.storage == STORAGE_TEXT:
            _refuse_nul(values, where, keys)
        if column.storage == STORAGE_TEXT and _too_long(values, rules.value_max):
            pieces = _pieces(values, rules, where, keys)
            split.append((column, pieces))
            data[column.short] = pd.Series([p[0] for p in pieces], dtype=object)
            out.split_values += sum(1 for p in pieces if len(p) > 1)
        else:
            data[column.short], fmt = _values(values, column, rules)
            if fmt is not None:
                out.formats[column.short] = fmt
            if column.storage == "boolean" and rules.value_labels:
                out.value_labels[column.short] = BOOLEAN_LABELS
    # the further pieces are named after every whole column (so no whole column's name
    # depends on the data)
    parts = {c.short: max(len(p) for p in pieces) for c, pieces in split}
    names = copy.deepcopy(dataset.names)  # the plan stays as it was: a frame can be rebuilt
    later: dict[str, list[tuple[str, str]]] = {}
    for column, pieces in split:
        for part in range(2, parts[column.short] + 1):
            short = names.take_part(column.short, part)
            label = short_label(column.label, rules.label_max, f" ({part})")
            data[short] = pd.Series([p[part - 1] if len(p) >= part else "" for p in pieces],
                                    dtype=object)
            later.setdefault(column.short, []).append((short, label))
    order: list[str] = []
    for column in dataset.columns:
        n = parts.get(column.short, 1)
        order.append(column.short)
        out.labels.append(column.short_label)
        out.mapping.append(_row(dataset, column, column.short, column.short_label, 1, n))
        for part, (short, label) in enumerate(later.get(column.short, []), start=2):
            order.append(short)
            out.labels.append(label)
            out.mapping.append(_row(dataset, column, short, label, part, n))
    if rules.max_columns is not None and len(order) > rules.max_columns:
        raise ValueRefused(_too_many(dataset, split, keys, len(order), rules, study))
    # the series become the frame's columns as they are: a copy would double the peak memory
    out.frame = pd.DataFrame({name: data.pop(name) for name in order}, columns=order, copy=False)
    return out


def _too_many(dataset: Dataset, split: list[tuple[Column, list[list[str]]]],
              keys: pa.ChunkedArray | None, columns: int, rules: FormatRules, study: str) -> str:
    """Why a dataset has more columns than the format holds: the value split the most."""
    message = (f"study {study}, {_place(dataset)}: {columns} columns, more than the "
               f"{rules.max_columns} {rules.what} holds")
    if not split:
        return message
    column, pieces = max(split, key=lambda s: max(len(p) for p in s[1]))
    i = max(range(len(pieces)), key=lambda r: len(pieces[r]))
    key = keys[i].as_py() if keys is not None else i + 1
    return (f"{message} after splitting long texts; the longest: variable {column.original}, "
            f"record {key}, {len(''.join(pieces[i]).encode())} bytes")


def mapping_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The mapping rows as a table (the mapping dataset's and the CSV sheet's rows)."""
    types = {"part": pa.int64(), "parts": pa.int64()}
    return pa.table({name: pa.array([r[name] for r in rows], types.get(name, pa.string()))
                     for name, _ in MAPPING_COLUMNS})
