"""MongoDB sink assets: record envelopes (`records`) and subjects with their visits (`subjects`).

Each asset only plans the write: which collection, which indexes, and how to turn the study's lake
files into document batches (read lazily, one Arrow batch at a time). `mongodb_io_manager` runs it.
Deleted records (`deleted: true`) stay as documents, flagged; records gone from the lake are
removed. Each plan also says how to rebuild only the documents of changed lake keys, which
the IO manager uses when the lake's change logs allow it (see `writer.sync_collection`).
"""

from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.mongodb.documents import (
    rebatch,
    record_documents,
    subject_doc_id,
    subject_documents,
)
from imednet_assets.defs.sinks.mongodb.writer import CollectionWrite, KeyedDocs

SINK = Sink("mongodb")
MONGODB_IO_MANAGER_KEY = SINK.io_manager_key
POOL = SINK.pool
RECORDS_COLLECTION = "records"
SUBJECTS_COLLECTION = "subjects"
RECORD_INDEXES = ("study_key", "subject_key", "form_key")
SUBJECT_INDEXES = ("study_key", "subject_key")
IN_CHUNK = 10_000
OR_CHUNK = 1_000


def _arrow_batches(lake: LakeSlice, size: int,
                   where: pc.Expression | None = None) -> Iterator[pa.RecordBatch]:
    if lake.files:
        # small read-ahead: the writer's own prefetch already overlaps reading and writing
        yield from lake.dataset().to_batches(batch_size=size, batch_readahead=2,
                                             fragment_readahead=1, filter=where)


def _rows(lake: LakeSlice) -> int:
    """The slice's row count from its manifest (no file opened), else from the file footers."""
    return lake.manifest.rows if lake.manifest is not None else lake.num_rows


def _values(lake: LakeSlice, column: str, keys: frozenset[Any] | None) -> pa.Array:
    """Changed keys (JSON values from the change log) typed like the slice's key column."""
    return pa.array(sorted(keys or ()), lake.schema.field(column).type)


def _chunked(field: str, values: frozenset[Any]) -> Iterator[dict[str, Any]]:
    """`{field: {"$in": [...]}}` filters of at most `IN_CHUNK` values (a filter is a BSON
    document: one over a long change log would exceed its 16 MB limit)."""
    ordered = sorted(values)
    for start in range(0, len(ordered), IN_CHUNK):
        yield {field: {"$in": ordered[start : start + IN_CHUNK]}}


def records_write(study: str, records: LakeSlice) -> CollectionWrite:
    """The study's record envelopes, planned from its lake slice (also used by the benchmark).

    Applied by key: a changed `record_id` is its one document."""

    def batches(size: int) -> Iterator[list[dict[str, Any]]]:
        return rebatch((record_documents(b) for b in _arrow_batches(records, size)), size)

    def select(keys: Mapping[str, frozenset[Any]]) -> Iterator[dict[str, Any]]:
        return _chunked("record_id", keys.get("records", frozenset()))

    def build(keys: Mapping[str, frozenset[Any]], _found: frozenset[str],
              size: int) -> Iterator[list[dict[str, Any]]]:
        # the found documents are those of the same record ids: nothing else to rebuild
        where = pc.field("record_id").isin(_values(records, "record_id", keys.get("records")))
        return rebatch((record_documents(b) for b in _arrow_batches(records, size, where)), size)

    return CollectionWrite("records", study, RECORDS_COLLECTION, RECORD_INDEXES, _rows(records),
                           batches, slices={"records": records},
                           keyed=KeyedDocs(("records",), select, build))


def subjects_write(study: str, subjects: LakeSlice, visits: LakeSlice) -> CollectionWrite:
    """The study's subject documents with their visits embedded.

    Applied by key: a changed subject (`subject_id`) or visit (`visit_id`) rebuilds the
    document of its subject, and of the subject whose document embeds that visit now (a visit
    that moved to another subject leaves the old one). Nothing is read before the write asks:
    a skipped write reads no lake file."""

    @cache
    def visit_table() -> pa.Table:
        # a study's visits are small next to its records: read once, filtered per subject batch
        return visits.dataset().to_table() if visits.files else visits.schema.empty_table()

    @cache
    def subject_table() -> pa.Table:
        return subjects.dataset().to_table() if subjects.files else subjects.schema.empty_table()

    def documents(batches: Iterable[pa.RecordBatch | pa.Table]) -> Iterator[list[dict]]:
        table = visit_table()
        for batch in batches:
            mine = pc.is_in(table.column("subject_key"), value_set=batch.column("subject_key"))
            yield subject_documents(batch, table.filter(mine))

    def batches(size: int) -> Iterator[list[dict[str, Any]]]:
        return rebatch(documents(_arrow_batches(subjects, size)), size)

    def select(keys: Mapping[str, frozenset[Any]]) -> Iterator[dict[str, Any]]:
        yield from _chunked("subject_id", keys.get("subjects", frozenset()))
        # `$or` of equalities, not `$in`: nx-27017 (the test server) matches a field inside an
        # array of embedded documents only by equality; MongoDB serves both alike
        visit_ids = sorted(keys.get("visits", ()))
        for start in range(0, len(visit_ids), OR_CHUNK):
            yield {"$or": [{"visits.visit_id": v} for v in visit_ids[start : start + OR_CHUNK]]}

    def build(keys: Mapping[str, frozenset[Any]], found: frozenset[str],
              size: int) -> Iterator[list[dict[str, Any]]]:
        table, visit_rows = subject_table(), visit_table()
        moved = pc.is_in(visit_rows.column("visit_id"),
                         value_set=_values(visits, "visit_id", keys.get("visits")))
        of_visits = visit_rows.filter(moved).column("subject_key")
        changed = pc.is_in(table.column("subject_id"),
                           value_set=_values(subjects, "subject_id", keys.get("subjects")))
        doc_ids = [subject_doc_id(study, k, i) for k, i in zip(
            table.column("subject_key").to_pylist(), table.column("subject_id").to_pylist(),
            strict=True)]
        wanted = pc.or_kleene(
            pc.or_kleene(changed, pc.is_in(table.column("subject_key"), value_set=of_visits)),
            pa.array([d in found for d in doc_ids], pa.bool_()))
        chosen = table.filter(pc.fill_null(wanted, False))
        return rebatch(documents(chosen.to_batches(max_chunksize=size)), size)

    def metadata() -> dict[str, Any]:
        table = visit_table()
        keys = pc.unique(subject_table().column("subject_key"))
        orphans = table.num_rows - (
            pc.sum(pc.is_in(table.column("subject_key"), value_set=keys)).as_py() or 0)
        return {"visits_embedded": table.num_rows - orphans, "visits_without_subject": orphans}

    return CollectionWrite(
        "subjects", study, SUBJECTS_COLLECTION, SUBJECT_INDEXES, _rows(subjects), batches,
        metadata, slices={"subjects": subjects, "visits": visits},
        keyed=KeyedDocs(("subjects", "visits"), select, build),
    )


records_asset = SINK.study_asset(
    RECORDS_COLLECTION, ("records",),
    "One document per record in `records`: `_id = <study_key>/<record_id>`, keys, status, dates "
    "and `record_data` (field names MongoDB refuses are percent-encoded, see `renamed_fields`).",
    lambda study, slices: records_write(study, slices["records"]),
)

subjects_asset = SINK.study_asset(
    SUBJECTS_COLLECTION, ("subjects", "visits"),
    "One document per subject in `subjects` (`_id = <study_key>/<subject_key>`), its visits "
    "embedded as `visits`, ordered by visit_id.",
    lambda study, slices: subjects_write(study, slices["subjects"], slices["visits"]),
)

mongodb_assets: list[dg.AssetsDefinition] = SINK.assets([records_asset, subjects_asset])
