"""Pseudonymised copies of lake slices, for a destination that opted in (see `pseudonyms`).

The copies are written batch by batch into a folder of the step's own and handed to the
destination as ordinary `LakeSlice`s, so every destination (tables, files, documents, graph,
ODM) gets the same pseudonyms through the one place it reads the lake; the lake is not touched.
Slices without subject columns (study metadata) are handed over as they are.

Free text may name a subject too ("Subject 101-003 missed the visit"): the study's subject keys
and OIDs are replaced by their pseudonyms, as whole words, in the values of TEXT and MEMO
variables, query descriptions and comments, and reasons for change (see `SubjectMentions`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
_FREE_TEXT_TYPES = ("TEXT", "MEMO")
#: free-text columns that may name a subject (nested: a field of a list of structs)
FREE_TEXT_COLUMNS = ("description", "reason_for_change")
FREE_TEXT_FIELDS = {"query_comments": ("comment",)}
_SEP = "\x1f"
_DAY_UNITS = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


@dataclass(frozen=True)
class SubjectMentions:
    """A study's subject keys and OIDs as free text may write them, each with its pseudonym.

    A mention is a whole word: a run of letters, digits and the other characters the keys use
    (so `101-003` in `101-0031` or `X101-003` is not one); a key with a blank in it is replaced
    wherever it appears."""

    pseudonyms: Mapping[str, str]
    word: re.Pattern[str]
    spaced: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the original keys must never reach a log or a message
        return f"SubjectMentions({len(self.pseudonyms)} subject keys and OIDs)"

    @classmethod
    def of(cls, study: str, keys: Iterable[str | None], oids: Iterable[str | None],
           p: Pseudonymiser) -> SubjectMentions:
        pseudonyms = {k: p.subject_key(study, k) for k in keys if k}
        pseudonyms.update({o: p.subject_oid(study, o) for o in oids if o})
        extra = sorted({c for k in pseudonyms for c in k if not (c.isalnum() or c.isspace())})
        word = re.compile(f"[\\w{re.escape(''.join(extra))}]+")
        spaced = tuple(sorted((k for k in pseudonyms if any(c.isspace() for c in k)),
                              key=len, reverse=True))
        return cls(pseudonyms, word, spaced)

    def _word(self, match: re.Match[str]) -> str:
        text = match.group(0)
        if text in self.pseudonyms:
            return self.pseudonyms[text]
        # a sentence's punctuation may cling to the key ("... subject 101-003.")
        core = text.strip("".join(c for c in text if not c.isalnum()))
        if core and core in self.pseudonyms:
            start = text.index(core)
            return text[:start] + self.pseudonyms[core] + text[start + len(core):]
        return text

    def text(self, value: str) -> str:
        """`value` with every mention replaced."""
        for key in self.spaced:
            value = value.replace(key, self.pseudonyms[key])
        return self.word.sub(self._word, value)

    def column(self, values: pa.Array) -> pa.Array:
        """A text column with every mention replaced (each distinct value looked at once)."""
        if not self.pseudonyms or len(values) == 0:
            return values
        return _mapped(values, self.text, values.type)


@dataclass(frozen=True)
class StudyText:
    """What pseudonymising a study's batches needs besides the key: which record values are
    dates (`<form key><sep><variable name>`), which are free text, and the subject mentions."""

    dates: frozenset[str] = frozenset()
    free_text: frozenset[str] = frozenset()
    mentions: SubjectMentions | None = None


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
        item_days = pc.take(days, pc.list_parent_indices(column))
        return _struct_fields(column, lambda _field, values: _shift(values, item_days))
    return column


def _struct_fields(column: pa.ListArray,
                   child: Callable[[pa.Field, pa.Array], pa.Array]) -> pa.ListArray:
    """A list of structs with each field's values (all lists' items) replaced by
    `child(field, values)`; nulls and list boundaries stay."""
    items = column.flatten()
    fields = list(column.type.value_type)
    children = [child(f, items.field(i)) for i, f in enumerate(fields)]
    structs = pa.StructArray.from_arrays(children, fields=fields, mask=items.is_null())
    offsets = pc.subtract(column.offsets, column.offsets[0])
    return pa.ListArray.from_arrays(offsets, structs, type=column.type, mask=column.is_null())


def _scrub_fields(column: pa.ListArray, names: tuple[str, ...],
                  mentions: SubjectMentions) -> pa.ListArray:
    """A list of structs with its `names` text fields' mentions replaced."""
    return _struct_fields(column, lambda field, values: mentions.column(values)
                          if field.name in names else values)


def _shift_text(values: pa.Array, days: pa.Array, pattern: str, fmt: str) -> pa.Array:
    """Text values that are dates (timestamps) in `fmt` moved by `days`; one of that shape the
    parser refuses becomes null rather than pass unshifted (an overflowing day rolls over)."""
    hit = pc.match_substring_regex(values, pattern)
    candidates = pc.if_else(hit, values, pa.scalar(None, pa.string()))
    parsed = pc.strptime(candidates, format=fmt, unit="s", error_is_null=True)
    moved = pc.strftime(_shift(parsed, days), format=fmt)
    return pc.if_else(pc.fill_null(hit, False), moved, values)


def _record_data(column: pa.MapArray, days: pa.Array, identifying: tuple[str, ...],
                 forms: pa.Array, study: StudyText) -> pa.Array:
    """recordData with the identifying variables' entries dropped (their cells read as null),
    every value that is a date or a timestamp shifted by the record's subject offset, a value
    of a DATE/DATETIME variable in any other spelling masked (it cannot be shifted), and the
    subjects named in the values of TEXT/MEMO variables replaced by their pseudonyms."""
    # `keys`/`items` of a map ignore the array's slice: cut them to its offsets
    offsets = column.offsets.to_numpy()
    start, length = int(offsets[0]), int(offsets[-1] - offsets[0])
    keys, values = column.keys.slice(start, length), column.items.slice(start, length)
    parents = pa.array(np.repeat(np.arange(len(column)), np.diff(offsets)), pa.int64())
    keep = pc.invert(pc.is_in(pc.utf8_lower(keys), pa.array(identifying, pa.string())))
    keep = pc.fill_null(keep, True)
    entry_days = pc.take(days, parents)
    qualified = (pc.binary_join_element_wise(pc.take(forms, parents), keys, _SEP)
                 if study.dates or study.free_text else None)
    if study.dates:
        spelled = pc.or_(pc.match_substring_regex(values, _TIMESTAMP),
                         pc.match_substring_regex(values, _DATE))
        odd = pc.and_(pc.is_in(qualified, pa.array(sorted(study.dates), pa.string())),
                      pc.and_(pc.invert(spelled), pc.not_equal(values, "")))
        values = pc.if_else(pc.fill_null(odd, False), pa.scalar(None, pa.string()), values)
    if study.free_text and study.mentions is not None:
        text = pc.fill_null(pc.is_in(qualified, pa.array(sorted(study.free_text),
                                                          pa.string())), False)
        if pc.any(text).as_py():
            scrubbed = study.mentions.column(pc.filter(values, text))
            values = pc.replace_with_mask(values, text, scrubbed)
    values = _shift_text(values, entry_days, _TIMESTAMP, "%Y-%m-%d %H:%M:%S")
    values = _shift_text(values, entry_days, _DATE, "%Y-%m-%d")
    kept_parents = pc.filter(parents, keep).to_numpy(zero_copy_only=False)
    counts = np.bincount(kept_parents, minlength=len(column)) if len(column) else np.array([])
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32), pa.int32())
    return pa.MapArray.from_arrays(offsets, pc.filter(keys, keep), pc.filter(values, keep),
                                   type=column.type, mask=column.is_null())


def variables_of_type(variables: LakeSlice, types: tuple[str, ...]) -> frozenset[str]:
    """`<form key><sep><variable name>` of the study's variables of one of `types`."""
    table = variables.columns(["form_key", "variable_name", "variable_type"]).to_pylist()
    return frozenset(f"{v['form_key']}{_SEP}{v['variable_name']}" for v in table
                     if (v["variable_type"] or "").upper() in types)


def study_text(variables: LakeSlice, subjects: LakeSlice, p: Pseudonymiser) -> StudyText:
    """The study's date and free-text variables and its subject mentions."""
    held = subjects.columns(["subject_key", "subject_oid"]).to_pydict()
    return StudyText(variables_of_type(variables, _DATE_TYPES),
                     variables_of_type(variables, _FREE_TEXT_TYPES),
                     SubjectMentions.of(subjects.study_key, held["subject_key"],
                                        held["subject_oid"], p))


def pseudonymise_batch(batch: pa.RecordBatch, study: str, p: Pseudonymiser,
                       text: StudyText = StudyText()) -> pa.RecordBatch:
    """One batch of a subject-bearing entity, pseudonymised (same schema); `text` says which
    record values are dates or free text and which subjects free text may name."""
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
            column = _record_data(column, days, p.identifying, forms, text)
        else:
            column = _shift(column, days)
            if text.mentions is not None and field.name in FREE_TEXT_COLUMNS:
                column = text.mentions.column(column)
            elif text.mentions is not None and field.name in FREE_TEXT_FIELDS:
                column = _scrub_fields(column, FREE_TEXT_FIELDS[field.name], text.mentions)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def _copy(lake: LakeSlice, folder: Path, p: Pseudonymiser, text: StudyText) -> LakeSlice:
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
                writer.write_batch(pseudonymise_batch(batch, lake.study_key, p, text))
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
                  read: Callable[[str, str], LakeSlice]) -> Iterator[dict[Any, LakeSlice]]:
    """`slices` as the destination must see them: as they are when `p` is None, else the
    subject-bearing ones pseudonymised into a folder that is removed on exit; `read(entity,
    study)` gives a study's variables and subjects slices (which record values are dates or
    free text, which subjects free text may name)."""
    if p is None:
        yield dict(slices)
        return
    texts: dict[str, StudyText] = {}
    with TemporaryDirectory(prefix="imednet-pseudonymised-") as tmp:
        out = {}
        for n, (name, lake) in enumerate(slices.items()):
            if not any(c in lake.schema.names for c in SUBJECT_COLUMNS):
                out[name] = lake
                continue
            study = lake.study_key
            if study not in texts:
                texts[study] = study_text(read("variables", study), read("subjects", study), p)
            out[name] = _copy(lake, Path(tmp) / f"{n:04d}-{lake.entity}", p, texts[study])
        yield out
