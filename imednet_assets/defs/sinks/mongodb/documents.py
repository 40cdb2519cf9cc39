"""Lake rows -> MongoDB documents (pure: no server, tested as data).

Records become the seed's envelope (`_id = "<study_key>/<record_id>"`, ids, keys, status, dates,
`record_data`), subjects embed their visits. Timestamps become ISO-8601 text (`...Z`, UTC) and
dates `YYYY-MM-DD`, as the seed envelope shows. `record_data` values stay the API's text (the lake
keeps them as text, so nothing is re-typed or lost).

Field names MongoDB refuses or cannot query (a leading `$`, any `.`, NUL) are percent-encoded,
together with `%` itself so the encoding is reversible (`urllib.parse.unquote` undoes it).
A document with renamed keys also carries `renamed_fields` {safe name: original name}.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import unquote

import orjson
import pyarrow as pa
import pyarrow.compute as pc

ISO_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
RENAMED_FIELD = "renamed_fields"
EXPORTED_AT = "exported_at"
HASH_FIELD = "_content_hash"
"""Digest of a document without `exported_at`: a replay skips documents whose content is equal."""

# The seed's envelope, in its order; other lake columns follow so nothing of the record is lost.
ENVELOPE = (
    "study_key",
    "record_id",
    "subject_id",
    "subject_key",
    "visit_id",
    "form_id",
    "form_key",
    "record_status",
    "deleted",
    "date_created",
    "date_modified",
)
RECORD_EXTRA = (
    "interval_id",
    "site_id",
    "parent_record_id",
    "record_oid",
    "record_type",
    "subject_oid",
    "keywords",
    "extra",
)

_ESCAPES = {"%": "%25", ".": "%2E", "\x00": "%00"}


def safe_field_name(name: str) -> str:
    """`name` as a field name MongoDB stores and queries; names that are already safe stay as is."""
    if not any(ch in name for ch in _ESCAPES) and not name.startswith("$"):
        return name
    escaped = "".join(_ESCAPES.get(ch, ch) for ch in name)
    return "%24" + escaped[1:] if escaped.startswith("$") else escaped


def original_field_name(safe: str) -> str:
    """Inverse of `safe_field_name`."""
    return unquote(safe)


def record_doc_id(study_key: str, record_id: int) -> str:
    return f"{study_key}/{record_id}"


def subject_doc_id(study_key: str, subject_key: str | None, subject_id: int | None) -> str:
    """`<study>/<subject_key>`; a subject without a key falls back to `#<subject_id>`."""
    return f"{study_key}/{subject_key}" if subject_key is not None else f"{study_key}/#{subject_id}"


def _plain(value: Any) -> Any:
    """Nested Arrow values (lists of structs) as JSON-able values: temporal values as ISO text."""
    if isinstance(value, datetime):
        return value.strftime(ISO_TIMESTAMP)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _has_temporal(t: pa.DataType) -> bool:
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _has_temporal(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_temporal(f.type) for f in t)
    return False


def plain_rows(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    """Rows as Python dicts; top-level timestamps/dates converted in Arrow, nested ones per row.

    Maps stay lists of (key, value) pairs (their keys are made safe by the caller).
    """
    names, arrays, nested = [], [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        t = field.type
        if pa.types.is_timestamp(t):
            # API timestamps have whole seconds; the lake stores them as ms
            column = pc.strftime(pc.cast(column, pa.timestamp("s", t.tz), safe=False),
                                 format=ISO_TIMESTAMP)
        elif pa.types.is_date(t):
            column = pc.cast(column, pa.string())
        elif _has_temporal(t):
            nested.append(field.name)
        names.append(field.name)
        arrays.append(column)
    rows = pa.Table.from_arrays(arrays, names=names).to_pylist()
    for row in rows:
        for name in nested:
            row[name] = _plain(row[name])
    return rows


def safe_mapping(pairs: Iterable[tuple[str, Any]] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(key, value) pairs -> (document with safe keys, {safe: original} for the renamed keys)."""
    doc: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    for key, value in pairs or ():
        safe = safe_field_name(key)
        if safe != key:
            renamed[safe] = key
        doc[safe] = value
    return doc, renamed


def record_document(row: Mapping[str, Any]) -> dict[str, Any]:
    """One lake record row (plain values) -> its envelope (without `exported_at`)."""
    doc: dict[str, Any] = {"_id": record_doc_id(row["study_key"], row["record_id"])}
    for name in ENVELOPE:
        doc[name] = row.get(name)
    data, renamed = safe_mapping(row.get("record_data"))
    doc["record_data"] = data
    for name in RECORD_EXTRA:
        doc[name] = row.get(name)
    if renamed:
        doc[RENAMED_FIELD] = renamed
    return doc


def record_documents(batch: pa.RecordBatch | pa.Table) -> list[dict[str, Any]]:
    return [record_document(row) for row in plain_rows(batch)]


def subject_documents(
    subjects: pa.RecordBatch | pa.Table, visits: pa.Table
) -> list[dict[str, Any]]:
    """Subjects (plain values) with their visits embedded (`visits`, ordered by visit_id).

    `visits` may hold visits of other subjects too; those are ignored here.
    """
    by_subject: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for visit in plain_rows(visits):
        visit.pop("study_key", None)
        by_subject[visit.get("subject_key")].append(visit)
    docs = []
    for row in plain_rows(subjects):
        key = row.get("subject_key")
        own = sorted(by_subject.get(key, []), key=lambda v: (v.get("visit_id") is None,
                                                             v.get("visit_id") or 0))
        docs.append({"_id": subject_doc_id(row["study_key"], key, row.get("subject_id")),
                     **row, "visits": own})
    return docs


def content_hash(doc: Mapping[str, Any]) -> str:
    """Digest of everything but `exported_at` and the digest itself (key order does not matter)."""
    body = {k: v for k, v in doc.items() if k not in (EXPORTED_AT, HASH_FIELD)}
    return hashlib.blake2b(orjson.dumps(body, option=orjson.OPT_SORT_KEYS),
                           digest_size=16).hexdigest()


def rebatch(docs: Iterable[list[dict[str, Any]]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Document lists of any length -> lists of exactly `size` (the last may be shorter)."""
    pending: list[dict[str, Any]] = []
    for chunk in docs:
        pending.extend(chunk)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending
