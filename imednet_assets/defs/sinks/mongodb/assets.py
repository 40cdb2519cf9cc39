"""MongoDB sink assets: record envelopes (`records`) and subjects with their visits (`subjects`).

Each asset only plans the write: which collection, which indexes, and how to turn the study's lake
files into document batches (read lazily, one Arrow batch at a time). `mongodb_io_manager` runs it.
Deleted records (`deleted: true`) stay as documents, flagged; records gone from the lake are
removed.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.lake_inputs import sink_asset, study_of
from imednet_assets.defs.sinks.mongodb.documents import (
    rebatch,
    record_documents,
    subject_documents,
)
from imednet_assets.defs.sinks.mongodb.writer import CollectionWrite

MONGODB_IO_MANAGER_KEY = "mongodb_io_manager"
POOL = "mongodb_writer"
GROUP = "mongodb"
RECORDS_COLLECTION = "records"
SUBJECTS_COLLECTION = "subjects"
RECORD_INDEXES = ("study_key", "subject_key", "form_key")
SUBJECT_INDEXES = ("study_key", "subject_key")


def _sink(name: str, ins: dict[str, str], description: str):
    """The decorator both assets share (study partitions, pool, io manager, kinds)."""
    return sink_asset(
        key=["mongodb", name],
        ins=ins,
        group=GROUP,
        kinds={"mongodb"},
        io_manager_key=MONGODB_IO_MANAGER_KEY,
        pool=POOL,
        description=description,
    )


def _arrow_batches(lake: LakeSlice, size: int) -> Iterator[pa.RecordBatch]:
    if lake.files:
        # small read-ahead: the writer's own prefetch already overlaps reading and writing
        yield from lake.dataset().to_batches(batch_size=size, batch_readahead=2,
                                             fragment_readahead=1)


@_sink(
    RECORDS_COLLECTION,
    {"records": "records"},
    "One document per record in `records`: `_id = <study_key>/<record_id>`, keys, status, dates "
    "and `record_data` (field names MongoDB refuses are percent-encoded, see `renamed_fields`).",
)
def records_asset(context: dg.AssetExecutionContext, records: LakeSlice) -> CollectionWrite:
    return records_write(study_of(context, (records,)), records)


def records_write(study: str, records: LakeSlice) -> CollectionWrite:
    """The study's record envelopes, planned from its lake slice (also used by the benchmark)."""

    def batches(size: int) -> Iterator[list[dict[str, Any]]]:
        return rebatch((record_documents(b) for b in _arrow_batches(records, size)), size)

    return CollectionWrite("records", study, RECORDS_COLLECTION, RECORD_INDEXES,
                           records.num_rows, batches)


def _visits_table(visits: LakeSlice) -> pa.Table:
    # a study's visits are small next to its records: read once, filtered per subject batch
    return visits.dataset().to_table() if visits.files else visits.schema.empty_table()


@_sink(
    SUBJECTS_COLLECTION,
    {"subjects": "subjects", "visits": "visits"},
    "One document per subject in `subjects` (`_id = <study_key>/<subject_key>`), its visits "
    "embedded as `visits`, ordered by visit_id.",
)
def subjects_asset(
    context: dg.AssetExecutionContext, subjects: LakeSlice, visits: LakeSlice
) -> CollectionWrite:
    study = study_of(context, (subjects, visits))
    visit_table = _visits_table(visits)
    subject_keys = pc.unique(
        subjects.dataset().to_table(columns=["subject_key"]).column("subject_key")
        if subjects.files else pa.array([], pa.string())
    )
    orphans = visit_table.num_rows - pc.sum(
        pc.is_in(visit_table.column("subject_key"), value_set=subject_keys)
    ).as_py() if visit_table.num_rows else 0

    def batches(size: int) -> Iterator[list[dict[str, Any]]]:
        for batch in _arrow_batches(subjects, size):
            keys = batch.column("subject_key")
            mine = pc.is_in(visit_table.column("subject_key"), value_set=keys)
            yield subject_documents(batch, visit_table.filter(mine))

    return CollectionWrite(
        "subjects", study, SUBJECTS_COLLECTION, SUBJECT_INDEXES, subjects.num_rows,
        lambda size: rebatch(batches(size), size),
        {"visits_embedded": visit_table.num_rows - orphans, "visits_without_subject": orphans},
    )


mongodb_assets: list[dg.AssetsDefinition] = [records_asset, subjects_asset]
