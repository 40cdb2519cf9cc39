"""Pseudonymised copies of lake slices, for a destination that opted in (see `pseudonyms`).

The copies are written batch by batch into a folder of the step's own and handed to the
destination as ordinary `LakeSlice`s, so every destination (tables, files, documents, graph,
ODM) gets the same pseudonyms through the one place it reads the lake; the lake is not touched.
Slices without subject columns (study metadata) are handed over as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.pseudonyms import Pseudonymiser

SUBJECT_COLUMNS = ("subject_key", "subject_id", "subject_oid")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$").pattern
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$").pattern
_DATE_TYPES = ("DATE", "DATETIME")
_SEP = "\x1f"
_DAY_UNITS = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _mapped(column: pa.Array, fn: Callable[[Any], Any], type_: pa.DataType) -> pa.Array:
    """`fn` applied once per distinct value (nulls stay null)."""
    distinct = pc.unique(column)
    values = pa.array([None if v is None else fn(v) for v in distinct.to_pylist()], type_)
    return pc.take(values, pc.index_in(column, distinct))


def _shift(column: pa.Array, days: pa.Array) -> pa.Array:
    """Dates and timestamps moved by `days` (per row); other columns as they are; nested lists
    of structs (keywords, query comments) have their timestamps moved by their row's offset."""
    t = column.type
    if pa.types.is_timestamp(t):
        step = pc.multiply(days, _DAY_UNITS[t.unit])
        return pc.add(column.cast(pa.int64()), step).cast(t)
    if pa.types.is_date32(t):
        return pc.add(column.cast(pa.int32()), days.cast(pa.int32())).cast(t)
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type):
        items = column.flatten()
        item_days = pc.take(days, pc.list_parent_indices(column))
        fields = list(t.value_type)
        children = [_shift(items.field(i), item_days) for i in range(len(fields))]
        structs = pa.StructArray.from_arrays(children, fields=fields, mask=items.is_null())
        offsets = pc.subtract(column.offsets, column.offsets[0])
        return pa.ListArray.from_arrays(offsets, structs, type=t, mask=column.is_null())
    return column


def _shift_text(values: pa.Array, days: pa.Array, pattern: str, fmt: str) -> pa.Array:
    """Text values that are dates (timestamps) in `fmt` moved by `days`; one of that shape the
    parser refuses becomes null rather than pass unshifted (an overflowing day rolls over)."""
    hit = pc.match_substring_regex(values, pattern)
    candidates = pc.if_else(hit, values, pa.scalar(None, pa.string()))
    parsed = pc.strptime(candidates, format=fmt, unit="s", error_is_null=True)
    moved = pc.strftime(_shift(parsed, days), format=fmt)
    return pc.if_else(pc.fill_null(hit, False), moved, values)


def _record_data(column: pa.MapArray, days: pa.Array, identifying: tuple[str, ...],
                 forms: pa.Array, date_variables: frozenset[str]) -> pa.Array:
    """recordData with the identifying variables' entries dropped (their cells read as null),
    every value that is a date or a timestamp shifted by the record's subject offset, and a
    value of a DATE/DATETIME variable in any other spelling masked (it cannot be shifted)."""
    # `keys`/`items` of a map ignore the array's slice: cut them to its offsets
    offsets = column.offsets.to_numpy()
    start, length = int(offsets[0]), int(offsets[-1] - offsets[0])
    keys, values = column.keys.slice(start, length), column.items.slice(start, length)
    parents = pa.array(np.repeat(np.arange(len(column)), np.diff(offsets)), pa.int64())
    keep = pc.invert(pc.is_in(pc.utf8_lower(keys), pa.array(identifying, pa.string())))
    keep = pc.fill_null(keep, True)
    entry_days = pc.take(days, parents)
    if date_variables:
        qualified = pc.binary_join_element_wise(pc.take(forms, parents), keys, _SEP)
        spelled = pc.or_(pc.match_substring_regex(values, _TIMESTAMP),
                         pc.match_substring_regex(values, _DATE))
        odd = pc.and_(pc.is_in(qualified, pa.array(sorted(date_variables), pa.string())),
                      pc.and_(pc.invert(spelled), pc.not_equal(values, "")))
        values = pc.if_else(pc.fill_null(odd, False), pa.scalar(None, pa.string()), values)
    values = _shift_text(values, entry_days, _TIMESTAMP, "%Y-%m-%d %H:%M:%S")
    values = _shift_text(values, entry_days, _DATE, "%Y-%m-%d")
    kept_parents = pc.filter(parents, keep).to_numpy(zero_copy_only=False)
    counts = np.bincount(kept_parents, minlength=len(column)) if len(column) else np.array([])
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32), pa.int32())
    return pa.MapArray.from_arrays(offsets, pc.filter(keys, keep), pc.filter(values, keep),
                                   type=column.type, mask=column.is_null())


def date_variables(variables: LakeSlice) -> frozenset[str]:
    """`<form key><sep><variable name>` of the study's DATE and DATETIME variables."""
    table = variables.columns(["form_key", "variable_name", "variable_type"]).to_pylist()
    return frozenset(f"{v['form_key']}{_SEP}{v['variable_name']}" for v in table
                     if (v["variable_type"] or "").upper() in _DATE_TYPES)


def pseudonymise_batch(batch: pa.RecordBatch, study: str, p: Pseudonymiser,
                       dates: frozenset[str] = frozenset()) -> pa.RecordBatch:
    """One batch of a subject-bearing entity, pseudonymised (same schema); `dates` are the
    study's date variables (see `date_variables`)."""
    names = batch.schema.names
    subject = (batch.column("subject_key") if "subject_key" in names
               else pa.nulls(batch.num_rows, pa.string()))
    if "subject_id" in names:  # a row without a key is still someone's: by id then
        subject = pc.coalesce(subject, pc.binary_join_element_wise(
            "id:", batch.column("subject_id").cast(pa.string()), ""))
    days = pc.fill_null(_mapped(subject, lambda s: p.offset_days(study, s), pa.int64()), 0)
    columns = []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if field.name == "subject_key":
            column = _mapped(column, lambda v: p.subject_key(study, v), field.type)
        elif field.name == "subject_oid":
            column = _mapped(column, lambda v: p.subject_oid(study, v), field.type)
        elif field.name == "subject_id":
            column = _mapped(column, lambda v: p.subject_id(study, v), field.type)
        elif field.name == "extra":  # fields nobody vetted may say anything: not sent
            column = pa.nulls(batch.num_rows, field.type)
        elif field.name == "record_data":
            forms = (batch.column("form_key") if "form_key" in names
                     else pa.nulls(batch.num_rows, pa.string()))
            column = _record_data(column, days, p.identifying, forms, dates)
        else:
            column = _shift(column, days)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def _copy(lake: LakeSlice, folder: Path, p: Pseudonymiser, dates: frozenset[str]) -> LakeSlice:
    """The slice pseudonymised into `folder` (same file layout, manifest with its change log in
    pseudonyms and a lineage of its own), read back as a `LakeSlice`."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in lake.files:
        target = folder / source.relative_to(lake.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(target, lake.schema) as writer:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=65_536):
                batch = pa.RecordBatch.from_arrays(
                    [batch.column(n) for n in lake.schema.names], schema=lake.schema)
                writer.write_batch(pseudonymise_batch(batch, lake.study_key, p, dates))
    manifest = lake.manifest
    if manifest is not None:
        if manifest.key_column == "subject_id":  # the change log names subjects too
            log = tuple(replace(c, keys=tuple(p.subject_id(lake.study_key, k) for k in c.keys))
                        for c in manifest.log)
            manifest = replace(manifest, log=log)
        tagged = f"{manifest.lake_id}.p{p.lineage_tag(manifest.lake_id)}"
        replace(manifest, lake_id=tagged).write(folder)
    _keep_times(lake.path, folder)
    return LakeSlice.at(folder, lake.entity, lake.study_key, lake.schema)


def _keep_times(source: Path, copy: Path) -> None:
    """The copy's files and folders get the lake's modification times: file destinations stamp
    their exports with them (extraction time), so the same lake still gives the same bytes."""
    for path in sorted(copy.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [copy]:
        original = source / path.relative_to(copy)
        if original.exists():
            st = original.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@contextmanager
def pseudonymised(slices: Mapping[Any, LakeSlice], p: Pseudonymiser | None,
                  variables: Callable[[str], LakeSlice]) -> Iterator[dict[Any, LakeSlice]]:
    """`slices` as the destination must see them: as they are when `p` is None, else the
    subject-bearing ones pseudonymised into a folder that is removed on exit; `variables`
    gives a study's variables slice (which record values are dates)."""
    if p is None:
        yield dict(slices)
        return
    dates: dict[str, frozenset[str]] = {}
    with TemporaryDirectory(prefix="imednet-pseudonymised-") as tmp:
        out = {}
        for n, (name, lake) in enumerate(slices.items()):
            if not any(c in lake.schema.names for c in SUBJECT_COLUMNS):
                out[name] = lake
                continue
            if lake.entity == "records" and lake.study_key not in dates:
                dates[lake.study_key] = date_variables(variables(lake.study_key))
            out[name] = _copy(lake, Path(tmp) / f"{n:04d}-{lake.entity}", p,
                              dates.get(lake.study_key, frozenset()))
        yield out
