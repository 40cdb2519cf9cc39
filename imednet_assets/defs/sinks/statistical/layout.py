"""The datasets of a study's statistical export and the short name and label of every column.

Datasets: `subjects`, `visits`, then one per form (named after the form key), each column of the
DuckDB table in its order. Names and labels follow `names`; the pieces of split text columns are
named when the data is read (`frames`), after every whole column, so that no column's name
depends on the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from imednet_assets.defs.sinks.duckdb.naming import RAW_SUFFIX
from imednet_assets.defs.sinks.statistical.formats import FormatRules
from imednet_assets.defs.sinks.statistical.names import ShortNames, short_label
from imednet_assets.defs.sinks.tabular import TableSpec

MAPPING_DATASET = "mapping"
#: how a column is stored: text, number, date, datetime, boolean (a number: 1 true, 0 false)
STORAGE_TEXT = "text"


def storage_of(type_: pa.DataType) -> str:
    """How a DuckDB column type is held in the statistical formats."""
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "number"
    if pa.types.is_date(type_):
        return "date"
    if pa.types.is_timestamp(type_):
        return "datetime"
    return STORAGE_TEXT


@dataclass(frozen=True)
class Column:
    """One DuckDB column as the format holds it (its first piece, when split)."""

    source: str  # the DuckDB column name
    original: str  # the EDC variable name (`<name>__raw` for its text twin), else the column
    label: str
    storage: str
    short: str
    short_label: str


@dataclass
class Dataset:
    """One dataset of the export: where its rows come from and how its columns are named."""

    name: str
    original: str  # the form key, or `subjects`, `visits`, `mapping`
    table: str  # the DuckDB table
    label: str
    short_label: str
    columns: list[Column]
    names: ShortNames  # hands out the names of split pieces, after the columns'
    spec: TableSpec | None = None
    key_column: str | None = None  # what names a row in an error message


def plan_dataset(
    rules: FormatRules, *, name: str, original: str, table: str, label: str,
    schema: pa.Schema, spec: TableSpec | None = None,
) -> Dataset:
    """Name every column of one table for `rules`' format."""
    labels: dict[str, str] = {}
    originals: dict[str, str] = {}
    if spec is not None and spec.form is not None:
        labels = spec.form.column_descriptions()
        for col in spec.form.columns:
            originals[col.column_name] = col.variable_name
            if col.raw_column_name is not None:
                originals[col.raw_column_name] = col.variable_name + RAW_SUFFIX
    names = ShortNames(rules)
    columns = []
    for field in schema:
        text = labels.get(field.name.lower()) or field.name
        short = names.take(field.name)
        columns.append(Column(
            source=field.name, original=originals.get(field.name, field.name), label=text,
            storage=storage_of(field.type), short=short,
            short_label=short_label(text, rules.label_max)))
    key = next((k for k in ("record_id", "visit_id", "subject_key") if k in schema.names), None)
    return Dataset(name=name, original=original, table=table, label=label,
                   short_label=short_label(label, rules.file_label_max), columns=columns,
                   names=names, spec=spec, key_column=key)


def dataset_names(rules: FormatRules) -> ShortNames:
    """The allocator of a study's dataset names (`mapping` kept for the mapping dataset)."""
    names = ShortNames(rules)
    names.take(MAPPING_DATASET)
    return names
