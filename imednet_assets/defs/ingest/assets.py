"""Ingest assets: one per API entity, partitioned by study, streamed into the Parquet lake.

Each asset returns a `LakeWrite` whose batches are fetched lazily while the lake IO manager
writes them, so a study of any size flows through in bounded memory. A client error mid-stream
fails the write and the previous lake slice stays in place.
"""


from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.client.filters import term
from imednet_assets.client.settings import ClientSettings
from imednet_assets.client.sync import count_sync, iter_batches_sync
from imednet_assets.defs.execution import step_tags
from imednet_assets.defs.ingest.read_ahead import ReadAhead
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import FORM_COLUMN, STUDY_COLUMN, Incremental, LakeWrite
from imednet_assets.defs.modes import INCREMENTAL, changed_rows, run_mode
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.resources import ImednetResource

INGEST_GROUP = "ingest"
LAKE_IO_MANAGER_KEY = "lake_io_manager"

# entity -> (id column the lake sorts by, description)
ENTITIES: dict[str, tuple[str, str]] = {
    "studies": ("study_id", "The study's own row from the study list."),
    "sites": ("site_id", "Sites (hospitals, clinics) of the study."),
    "intervals": ("interval_id", "Planned visits of the protocol (Screening, Week 4, ...)."),
    "forms": ("form_id", "eCRF definitions of the study."),
    "variables": ("variable_id", "Questions on the study's forms, with types and labels."),
    "subjects": ("subject_id", "Participants of the study."),
    "visits": ("visit_id", "Each subject's instances of the planned intervals."),
    "records": ("record_id", "Filled-in forms with their answers, split by form in the lake."),
    "record_revisions": ("record_revision_id", "Audit trail of the study's records."),
    "queries": ("annotation_id", "Data-cleaning queries with their comment history."),
}
SPLIT_BY = {"records": FORM_COLUMN}
METADATA = ("studies", "sites", "intervals", "forms", "variables")
# entity -> (API attribute of its watermark, lake column): what an incremental refresh filters
# on. The study metadata (study, sites, intervals, forms, variables) is a few pages and is read
# whole when it is read: the lake keeps its bytes when nothing changed.
WATERMARKS: dict[str, tuple[str, str]] = {
    "records": ("dateModified", "date_modified"),
    "subjects": ("dateModified", "date_modified"),
    "visits": ("dateModified", "date_modified"),
    "record_revisions": ("dateCreated", "date_created"),
    "queries": ("dateModified", "date_modified"),
}
# entity -> (API attribute, lake column) of the date that says a row changed: what the change
# probe asks about, every entity (metadata too, so a run reads metadata only when it changed)
CHANGED_BY: dict[str, tuple[str, str]] = {
    **{entity: ("dateModified", "date_modified") for entity in METADATA},
    **WATERMARKS,
}
APPEND_ONLY = {"record_revisions"}


def asset_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["imednet", entity])


def _study_row(settings: ClientSettings, study_key: str) -> Iterator[pa.RecordBatch]:
    """The one row of `study_key` out of the (small) study list; an absent study is an error,
    not an empty slice, so a lost permission never wipes the lake."""
    found = 0
    for batch in iter_batches_sync(settings, "studies", None):
        mine = batch.filter(pc.equal(batch.column(STUDY_COLUMN), study_key))
        found += mine.num_rows
        if mine.num_rows:
            yield mine
    if not found:
        raise LookupError(f"study {study_key!r} is not in the API's study list")


def _batches(settings: ClientSettings, entity: str, study_key: str) -> Iterator[pa.RecordBatch]:
    """Lazy: nothing is fetched until the lake IO manager starts writing."""
    if entity == "studies":
        yield from _study_row(settings, study_key)
    else:
        yield from iter_batches_sync(settings, entity, study_key)


def _incremental(
    settings: ClientSettings, entity: str, study_key: str, lag_s: float,
    start: datetime | None, ahead: ReadAhead, expected_rows: int | None = None,
) -> Incremental:
    """The changes from `start` (the slice's watermark minus the lag) and the count are read
    ahead; should the lake start earlier (its slice changed meanwhile), it reads again.
    `expected_rows`: what the change sensor counted from `start`."""
    attribute = WATERMARKS[entity][0]

    def changes(since: datetime, expected: int | None = None) -> Iterator[pa.RecordBatch]:
        return iter_batches_sync(settings, entity, study_key, expected_rows=expected,
                                 filter=str(term(attribute, ">=", since)))

    def count() -> Iterator[int]:
        yield count_sync(settings, entity, study_key)

    name = f"imednet-ahead-{entity}-{study_key}"
    take_changes = (ahead.add(lambda: changes(start, expected_rows), name)
                    if start is not None else None)
    take_count = ahead.add(count, name)

    def changes_since(since: datetime) -> Iterator[pa.RecordBatch]:
        # reading from an earlier mark only reads rows the lake drops as already held
        if take_changes is not None and start is not None and start <= since:
            return take_changes()
        return changes(since)

    return Incremental(
        changes_since=changes_since,
        api_count=lambda: next(take_count()),
        lag_s=lag_s,
        append_only=entity in APPEND_ONLY,
        expected_rows=expected_rows,
    )


def _taken(take: Callable[[], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """Lazy: the read is taken when the lake starts writing."""
    yield from take()


def _spec(entity: str) -> dg.AssetSpec:
    sort_by, description = ENTITIES[entity]
    return dg.AssetSpec(
        key=asset_key(entity),
        description=description,
        partitions_def=study_partitions,
        group_name=INGEST_GROUP,
        kinds={"parquet"},
        tags={"imednet/layer": INGEST_GROUP},
        metadata={"entity": entity, "sort_by": sort_by},
    ).with_io_manager_key(LAKE_IO_MANAGER_KEY)


@dg.multi_asset(
    name="imednet_ingest",
    specs=[_spec(entity) for entity in ENTITIES],
    # the UI can read one entity alone; a run reads the selected ones one after the other in
    # one step (a step per entity cost more in Dagster's bookkeeping than the reads themselves)
    can_subset=True,
    # a backfill of many studies is one run: the lake writes one slice per study
    backfill_policy=dg.BackfillPolicy.single_run(),
    description="Every API entity of the study, streamed into its lake slice.",
    op_tags=step_tags(),
)
def imednet_ingest(
    context: dg.AssetExecutionContext, imednet: ImednetResource,
    lake_io_manager: dg.ResourceParam[LakeIOManager],
) -> Any:
    settings = imednet.settings()
    incremental = run_mode(context) == INCREMENTAL
    expected = changed_rows(context.run.tags) if incremental else {}
    # an incremental run's reads are small: they start ahead of the lake and overlap
    ahead = ReadAhead(window=settings.concurrency) if incremental else None
    outputs = []
    for entity, (sort_by, _) in ENTITIES.items():
        key = asset_key(entity)
        if key not in context.selected_asset_keys:
            continue
        writes = {}
        for study in context.partition_keys:
            batches = _batches(settings, entity, study)
            inc = None
            if ahead is not None and entity in WATERMARKS:
                lag = imednet.incremental_lag_s
                start = lake_io_manager.incremental_start(entity, study, lag)
                # the sensor's counts are of the one study it launched the run for
                hint = expected.get(entity) if len(context.partition_keys) == 1 else None
                inc = _incremental(settings, entity, study, lag, start, ahead, hint)
            elif ahead is not None:
                batches = _taken(ahead.add(partial(_batches, settings, entity, study),
                                           f"imednet-ahead-{entity}-{study}"))
            writes[study] = LakeWrite(
                entity=entity,
                study_key=study,
                schema=SCHEMAS[entity],
                batches=batches,
                sort_by=sort_by,
                split_by=SPLIT_BY.get(entity),
                watermark_by=WATERMARKS[entity][1] if entity in WATERMARKS else None,
                incremental=inc,
            )
        outputs.append((key, writes))
    try:
        if ahead is not None:
            ahead.begin()
        for key, writes in outputs:
            # a run over several studies (single-run backfill) hands the lake one write per study
            value = writes if len(writes) > 1 else next(iter(writes.values()))
            yield dg.Output(value, output_name=key.to_python_identifier())
    finally:
        if ahead is not None:
            ahead.close()


ingest_assets: list[dg.AssetsDefinition] = [imednet_ingest]
