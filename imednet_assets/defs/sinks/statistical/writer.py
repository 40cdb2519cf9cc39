"""One study's export in one statistical format: a zip of one file per dataset (subjects,
visits, one per form), the mapping dataset and the mapping sheet (`mapping.csv`).

Each dataset is read whole from `StudyTables` (pyreadstat writes a whole frame, so memory grows
with the largest table, not with the study), written by pyreadstat into a file beside the zip,
stamped with the lake's extraction time and copied into a deterministic zip member.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from imednet_assets.defs.sinks.bundles import archive
from imednet_assets.defs.sinks.bundles.csv_zip import for_csv
from imednet_assets.defs.sinks.statistical.formats import FORMATS, FormatRules, StatFormat
from imednet_assets.defs.sinks.statistical.frames import (
    MAPPING_COLUMNS,
    Frame,
    build_frame,
    dataset_row,
    mapping_table,
)
from imednet_assets.defs.sinks.statistical.layout import (
    MAPPING_DATASET,
    Dataset,
    dataset_names,
    plan_dataset,
)
from imednet_assets.defs.sinks.statistical.names import base_name, short_label
from imednet_assets.defs.sinks.statistical.stamps import stamp_file
from imednet_assets.defs.sinks.tabular import StudyTables

MAPPING_SHEET = "mapping.csv"
_COPY_CHUNK = 1 << 20


@dataclass
class ExportStats:
    """What a write holds: rows per dataset, values split into pieces, datasets by table."""

    rows: dict[str, int] = field(default_factory=dict)
    split_values: int = 0
    out_of_range: int = 0
    datasets: dict[str, str] = field(default_factory=dict)  # DuckDB table -> dataset name


def plan_datasets(tables: StudyTables, rules: FormatRules) -> list[Dataset]:
    """Subjects, visits, then every form, named for the format."""
    names = dataset_names(rules)
    forms = tables.read(next(s for s in tables.specs() if s.name == "forms")).read_all()
    form_names = dict(zip(forms.column("form_key").to_pylist(),
                          forms.column("form_name").to_pylist(), strict=True))
    planned = []
    for spec in tables.specs():
        if spec.kind == "entity":
            original, label = spec.name, spec.name.title()
        elif spec.kind == "form" and spec.form is not None:
            original = spec.form.form_key
            label = form_names.get(original) or original
        else:
            continue
        planned.append(plan_dataset(rules, name=names.take(original), original=original,
                                    table=spec.name, label=label, schema=tables.schema(spec),
                                    spec=spec))
    return planned


def _member(zf: zipfile.ZipFile, name: str, file: Path) -> None:
    with archive.open_member(zf, name) as out, file.open("rb") as src:
        while chunk := src.read(_COPY_CHUNK):
            out.write(chunk)


def _write_dataset(zf: zipfile.ZipFile, scratch: Path, rules: FormatRules, dataset: Dataset,
                   frame: Frame, when: dt.datetime) -> None:
    file = scratch / f"{dataset.name}{rules.suffix}"
    try:
        options: dict[str, Any] = rules.writer_kwargs()
        if rules.fmt == "xpt":
            options["table_name"] = dataset.name
        if frame.formats:
            options["variable_format"] = frame.formats
        if frame.value_labels:
            options["variable_value_labels"] = frame.value_labels
        rules.write(frame.frame, str(file), file_label=dataset.short_label,
                    column_labels=frame.labels, **options)
        stamp_file(file, rules.fmt, when)
        _member(zf, file.name, file)
    finally:
        file.unlink(missing_ok=True)


def write_export(path: Path, fmt: StatFormat, tables: StudyTables, extracted_at: dt.datetime,
                 batch_rows: int = 65_536) -> ExportStats:
    """Write the study's export in `fmt` to `path` (a temporary file the caller swaps in)."""
    rules = FORMATS[fmt]
    stats = ExportStats()
    rows: list[dict[str, Any]] = []
    scratch = path.parent
    with archive.open_archive(path) as zf:
        for dataset in plan_datasets(tables, rules):
            assert dataset.spec is not None
            # no reference kept here: the table's memory goes as soon as the frame is built
            frame = build_frame(dataset, tables.read(dataset.spec, batch_rows=batch_rows)
                                .read_all(), rules, tables.study_key)
            _write_dataset(zf, scratch, rules, dataset, frame, extracted_at)
            stats.rows[dataset.table] = len(frame.frame)
            stats.split_values += frame.split_values
            stats.out_of_range += frame.out_of_range
            stats.datasets[dataset.table] = dataset.name
            rows += [dataset_row(dataset), *frame.mapping]
        mapping = mapping_table(rows)
        plan = plan_dataset(rules, name=base_name(MAPPING_DATASET, rules),
                            original=MAPPING_DATASET, table=MAPPING_DATASET,
                            label="Names and labels: original and in this format",
                            schema=mapping.schema)
        plan.columns = [dataclasses.replace(c, label=what,
                                            short_label=short_label(what, rules.label_max))
                        for c, (_, what) in zip(plan.columns, MAPPING_COLUMNS, strict=True)]
        frame = build_frame(plan, mapping, rules, tables.study_key)
        _write_dataset(zf, scratch, rules, plan, frame, extracted_at)
        # the sheet: every row, the mapping dataset's own columns included
        sheet = mapping_table([*rows, dataset_row(plan), *frame.mapping])
        _write_sheet(zf, sheet)
    return stats


def _write_sheet(zf: zipfile.ZipFile, sheet: pa.Table) -> None:
    """The mapping as CSV, text neutralised against formulas like the CSV bundle's."""
    with archive.open_member(zf, MAPPING_SHEET, pipelined=False) as out:
        batch = for_csv(sheet.combine_chunks().to_batches()[0]) if sheet.num_rows else None
        table = pa.Table.from_batches([batch]) if batch is not None else sheet
        pacsv.write_csv(table, out, pacsv.WriteOptions(eol="\r\n"))
