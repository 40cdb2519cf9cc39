"""Parquet lake IO manager: streams a `LakeWrite` into a staging folder, then makes it the live
slice in one step, so a reader sees the old slice or the new one, never a mix: a rename on a
local disk (`local.py`), a manifest replacement on object storage (`object_slices.py`)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from pydantic import Field, PrivateAttr

from imednet_assets.defs.lake.files import FileRoller
from imednet_assets.defs.lake.local import LocalSlices
from imednet_assets.defs.lake.manifest import FULL, INCREMENTAL, SliceManifest
from imednet_assets.defs.lake.merge import DELETED_COLUMN, READ_THREADS, SliceMerger, plan_merge
from imednet_assets.defs.lake.object_slices import ObjectStoreSlices
from imednet_assets.defs.lake.object_store import ObjectStore
from imednet_assets.defs.lake.slice import (
    NULL_PARTITION,
    STUDY_COLUMN,
    LakeSlice,
    LakeWrite,
    encode,
    lake_schema,
)
from imednet_assets.settings import (
    AWS_ACCESS_KEY_ID_ENV,
    AWS_REGION_ENV,
    AWS_SECRET_ACCESS_KEY_ENV,
    DEFAULT_LAKE_GRACE_S,
    LAKE_URL_ENV,
    S3_ENDPOINT_URL_ENV,
    is_object_store_url,
    lake_cache_root,
    lake_grace_s,
    lake_root,
)

WATERMARK_FORMAT = "%Y-%m-%d %H:%M:%S"
PREVIEW_ROWS = 5
PROGRESS_S = 2.0
"""A read that lasts longer logs its rows so far this often."""
PREVIEW_COLUMNS = 8
PREVIEW_CELL_CHARS = 40
SECRET_FIELDS = ("aws_secret_access_key",)


class LakeWriteError(RuntimeError):
    """A study slice could not be written; the previous slice is left as it was."""


def _mark_text(value: datetime | None) -> str | None:
    """A watermark as the manifest keeps it (the API's second resolution, UTC)."""
    return None if value is None else value.strftime(WATERMARK_FORMAT)


def newest_mark(dataset: pads.Dataset, column: str) -> str | None:
    """The newest `column` value of a slice's files as a watermark (None when it has no rows
    or no such column): the mark of a slice that keeps none in its manifest."""
    if column not in dataset.schema.names:
        return None
    return _mark_text(pc.max(dataset.to_table(columns=[column]).column(column)).as_py())


def read_start(watermark: str | None, lag_s: float) -> datetime | None:
    """Where an incremental read starts: the watermark minus the lag (`dateModified` has second
    resolution and writes land late); None for a slice without a watermark."""
    if watermark is None:
        return None
    return datetime.strptime(watermark, WATERMARK_FORMAT) - timedelta(seconds=lag_s)


def _held(lake: LakeSlice, columns: list[str], mark: str, since: datetime | None,
          ) -> tuple[pa.Table, int]:
    """The slice's columns a merge plan compares with (only its rows with `mark >= since` when
    `since` is given; none at all: the row count alone), and its row count."""
    if since is None:
        held = lake.columns(columns)
        return held, held.num_rows
    in_window = pc.field(mark) >= pa.scalar(since, pa.timestamp("ms"))
    return lake.columns(columns, where=in_window), lake.num_rows


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch in the slice's schema (same names and types), or a clear error."""
    if batch.schema.equals(schema, check_metadata=False):
        return batch
    if batch.schema.names != schema.names:
        raise ValueError(
            f"batch columns {batch.schema.names} differ from the schema {schema.names}"
        )
    return batch.cast(schema)


def _check_study(batch: pa.RecordBatch, study_key: str) -> None:
    """Rows of another study must never land in this study's slice."""
    if STUDY_COLUMN not in batch.schema.names or not batch.num_rows:
        return
    column = batch.column(STUDY_COLUMN)
    wrong = pc.invert(pc.fill_null(pc.equal(column, study_key), False))
    if pc.any(wrong).as_py():
        other = column.filter(wrong)[0].as_py()
        raise ValueError(f"a row of study {other!r} came in for study {study_key!r}")


def _split(batch: pa.RecordBatch, column: str) -> Iterator[tuple[str | None, pa.RecordBatch]]:
    """(value, rows) per distinct value of `column`, in first-seen order."""
    values = batch.column(column)
    for value in pc.unique(values).to_pylist():
        mask = pc.is_null(values) if value is None else pc.equal(values, value)
        yield value, batch.filter(pc.fill_null(mask, False))


def _preview(rows: list[dict[str, Any]], schema: pa.Schema) -> str:
    """A small markdown table of the first rows (first columns, long cells cut)."""
    names = schema.names[:PREVIEW_COLUMNS]

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        if len(text) > PREVIEW_CELL_CHARS:
            text = text[: PREVIEW_CELL_CHARS - 1] + "…"
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(row.get(n)) for n in names) + " |" for row in rows]
    return "\n".join(lines)


class SliceWriter(Protocol):
    """One writer's hold on one slice, whichever storage it is on."""

    staged: Path
    """Where the new slice is staged (same layout as a slice)."""

    def manifest(self) -> SliceManifest | None: ...

    def live(self) -> Path | None:
        """A local folder holding the live slice's files; None when it was never written."""

    def holds(self, staged: Path) -> bool:
        """True when `staged` holds exactly the live slice's Parquet bytes."""

    def commit(self, manifest: SliceManifest) -> None:
        """The staged slice, with `manifest`, becomes the live slice in one step."""

    def keep_changes(self, lake_id: str, sequence: int, rows: pa.Table) -> None:
        """Keep the rows merge `sequence` writes, for destinations one or a few merges behind
        (a lake may keep none: they then search the slice for the changed keys)."""

    def file_count(self) -> int: ...

    def version(self) -> str | None: ...


class LakeIOManager(dg.ConfigurableIOManager):
    """Hive-partitioned Parquet lake: `<root>/<entity>/study_key=<S>/[form_key=<F>/]part-*.parquet`
    on a local disk, or the same layout in versions under `s3://bucket/prefix` (see
    `object_slices.py`).

    Outputs are `LakeWrite`s (or a mapping study -> `LakeWrite` for a run over several study
    partitions); inputs are `LakeSlice`s (a list of them for several partitions) whose files
    are local either way. Set the AWS keys with `dg.EnvVar` so they never enter run config,
    metadata or logs (`configured_lake_io_manager` does).
    """

    root: str | None = Field(
        default=None,
        description="Lake root: a folder, or s3://bucket/prefix on S3-compatible object storage; "
        "defaults to <IMEDNET_ASSETS_DATA_DIR>/lake.",
    )
    rows_per_file: int = Field(default=1_000_000, description="Roll to a new file after this.")
    row_group_rows: int = Field(
        default=8_192,
        description="Rows per Parquet row group (small enough to be encoded while pages arrive).",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (http:// or https://); unset: AWS S3.",
    )
    aws_access_key_id: str | None = Field(
        default=None, description="Object-store access key (EnvVar); unset: pyarrow's default "
        "credential chain.",
    )
    aws_secret_access_key: str | None = Field(
        default=None, description="Object-store secret key (secret; use dg.EnvVar).",
    )
    aws_region: str | None = Field(default=None, description="Object-store region.")
    version_grace_s: float = Field(
        default=DEFAULT_LAKE_GRACE_S, ge=0,
        description="Object storage: a slice version no manifest names is deleted after this "
        "long (a reader still on it keeps working meanwhile).",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Object storage: local staging and copies of the versions read; defaults to "
        "<IMEDNET_ASSETS_DATA_DIR>/lake-cache.",
    )
    _slices: LocalSlices | ObjectStoreSlices | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Any:
        # pydantic's repr would show the resolved secret key
        for name, value in super().__repr_args__():
            yield name, ("***" if name in SECRET_FIELDS and value else value)

    def is_object_store(self) -> bool:
        return bool(self.root) and is_object_store_url(_resolved(self.root))

    def root_path(self) -> Path:
        """The local lake folder (a lake on object storage has none)."""
        if self.is_object_store():
            raise ValueError(f"the lake at {self.slices().store.url} is on object storage, not "
                             "in a local folder: read it through read_slice")
        return Path(self.root) if self.root else lake_root()

    def slices(self) -> LocalSlices | ObjectStoreSlices:
        """Where the slices are kept, as configured."""
        if self._slices is None:
            if self.is_object_store():
                store = ObjectStore(
                    _resolved(self.root), endpoint_url=_resolved(self.s3_endpoint_url),
                    access_key_id=_resolved(self.aws_access_key_id),
                    secret_access_key=_resolved(self.aws_secret_access_key),
                    region=_resolved(self.aws_region),
                )
                cache = Path(self.cache_dir) if self.cache_dir else lake_cache_root()
                self._slices = ObjectStoreSlices(store, cache, self.version_grace_s)
            else:
                self._slices = LocalSlices(self.root_path())
        return self._slices

    def _redact(self, text: str) -> str:
        slices = self.slices()
        return slices.store.redact(text) if isinstance(slices, ObjectStoreSlices) else text

    # -- output ---------------------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: LakeWrite | Mapping[str, LakeWrite]):
        asset = context.asset_key.to_user_string()
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        if isinstance(obj, LakeWrite):
            if len(keys) > 1:
                raise LakeWriteError(
                    f"{asset}: one LakeWrite for study {obj.study_key!r} cannot cover the "
                    f"{len(keys)} partitions {keys}; return one LakeWrite per study"
                )
            writes = {obj.study_key: obj}
        elif isinstance(obj, Mapping):
            writes = dict(obj)
        else:
            raise LakeWriteError(f"{asset}: the lake IO manager takes a LakeWrite, got {type(obj)}")
        if keys and sorted(writes) != sorted(keys):
            raise LakeWriteError(
                f"{asset}: output is for studies {sorted(writes)} but the run's partitions are "
                f"{sorted(keys)}"
            )
        results = {study: self._write(context, asset, write) for study, write in writes.items()}
        context.add_output_metadata(self._metadata(results))

    def _write(self, context: dg.OutputContext, asset: str, write: LakeWrite) -> dict[str, Any]:
        slices = self.slices()
        location = slices.location(write.entity, write.study_key)
        try:
            with slices.writer(write.entity, write.study_key, context.run_id,
                               context.log) as slot:
                before = slot.manifest()
                stats = self._refresh(write, slot, before, context.log)
                stats["watermark_before"] = before.watermark if before else None
                stats.update(files=slot.file_count(), version=slot.version())
        except Exception as exc:
            raise LakeWriteError(self._redact(
                f"{asset}: writing the lake slice for study {write.study_key!r} "
                f"(partition {write.study_key!r}) to {location} failed, the previous slice is "
                f"kept: {type(exc).__name__}: {exc}"
            )) from exc
        finally:
            close = getattr(write.batches, "close", None)
            if close is not None:
                close()
        return {**stats, "path": location}

    def _refresh(
        self, write: LakeWrite, slot: SliceWriter, before: SliceManifest | None, log: Any
    ) -> dict[str, Any]:
        """Incremental when asked and the slice has a watermark, else (or when the counts then
        disagree with the API) a full write."""
        inc = write.incremental
        if inc is None:
            return self._full(write, slot, before, log, reason="full refresh requested")
        if before is None or before.watermark is None or write.watermark_by is None:
            return self._full(write, slot, before, log, reason="the slice has no watermark yet")
        stats = self._merge(write, slot, before)
        api_rows = inc.api_count()
        if api_rows == stats["rows"]:
            return stats
        reason = (f"after the incremental merge the lake holds {stats['rows']} {write.entity} "
                  f"rows, the API lists {api_rows} (purged upstream): full refresh")
        log.info(f"study {write.study_key}: {reason}")
        shutil.rmtree(slot.staged, ignore_errors=True)
        return self._full(write, slot, slot.manifest(), log, reason=reason)

    def _full(
        self, write: LakeWrite, slot: SliceWriter, before: SliceManifest | None, log: Any,
        reason: str,
    ) -> dict[str, Any]:
        """Stream every row into `staged` and swap it in, unless it holds exactly the bytes of
        the live slice (a replay of unchanged data): then the live slice and its manifest stay."""
        stats = self._stream(write, slot.staged, log)
        stats.update(mode=FULL, reason=reason)
        if before is not None and slot.holds(slot.staged):
            return {**stats, "changed": False, "sequence": before.sequence,
                    "watermark": before.watermark, "inserted": 0, "updated": 0, "deleted": 0}
        manifest = (
            before.after_full(stats["rows"], stats["watermark"]) if before is not None
            else SliceManifest.first(write.entity, write.study_key, write.sort_by, stats["rows"],
                                     stats["watermark"])
        )
        slot.commit(manifest)
        return {**stats, "changed": True, "sequence": manifest.sequence,
                "inserted": None, "updated": None, "deleted": None}

    def _merge(self, write: LakeWrite, slot: SliceWriter, before: SliceManifest) -> dict[str, Any]:
        """Read the rows changed since the watermark (minus the lag) and merge them by key."""
        assert write.incremental is not None and write.watermark_by is not None
        schema = lake_schema(write.schema)
        key, mark = write.sort_by, write.watermark_by
        since = read_start(before.watermark, write.incremental.lag_s)
        assert since is not None
        held_columns = [c for c in (key, mark, DELETED_COLUMN, write.split_by)
                        if c is not None and c in schema.names]
        live = slot.live()
        assert live is not None  # the slice has a manifest, so it exists
        current = LakeSlice.at(live, write.entity, write.study_key, schema)
        parts = []
        reading: Future[tuple[pa.Table, int]] | None = None
        # an appended row never changes: only rows from `since` on can come in again
        window = since if write.incremental.append_only else None
        # reader threads: the slice's keys, then (unless only rows are added) the live
        # folders the changes go to, while the rest of the changes arrive from the API
        reader = ThreadPoolExecutor(max_workers=READ_THREADS,
                                    thread_name_prefix="imednet-lake-read")
        merger = SliceMerger(
            live, slot.staged, schema, key, write.split_by, self.rows_per_file,
            self.row_group_rows, reader=None if write.incremental.append_only else reader)
        try:
            expected = write.incremental.expected_rows
            if expected:  # the sensor counted changes: their plan needs the slice's keys
                reading = reader.submit(_held, current, held_columns, mark, window)
                merger.read_likely(expected)
            for raw in write.incremental.changes_since(since):
                batch = _conform(raw, schema)
                _check_study(batch, write.study_key)
                if reading is None and batch.num_rows:
                    reading = reader.submit(_held, current, held_columns, mark, window)
                merger.read_ahead(batch)
                parts.append(batch)
            # nothing read: the row count is all the plan needs (no column is read)
            held, held_rows = (reading.result() if reading is not None
                               else _held(current, [], mark, None))
            incoming = pa.Table.from_batches(parts, schema=schema)
            plan = plan_merge(incoming, held, key=key, watermark=mark, split_by=write.split_by,
                              held_rows=held_rows)
            stats: dict[str, Any] = {
                "mode": INCREMENTAL, "reason": f"read {incoming.num_rows} rows with {mark} >= "
                f"{since.strftime(WATERMARK_FORMAT)}", "read": incoming.num_rows,
                "inserted": plan.inserted, "updated": plan.updated, "deleted": plan.deleted,
                "rows": plan.held_rows + plan.inserted, "schema": schema,
                "preview": _preview(plan.changed.slice(0, PREVIEW_ROWS).select(schema.names)
                                    .to_pylist(), schema),
                "by_split": None,
            }
            if not plan.changed.num_rows:
                return {**stats, "changed": False, "sequence": before.sequence,
                        "watermark": before.watermark}
            written = merger.write(plan, append_only=write.incremental.append_only)
            slot.keep_changes(before.lake_id, before.sequence + 1, written)
        finally:
            merger.discard_reads()
            reader.shutdown(cancel_futures=True)
        newest = _mark_text(pc.max(plan.changed.column(mark)).as_py())
        watermark = max(w for w in (before.watermark, newest) if w is not None)
        manifest = before.after_merge(stats["rows"], watermark, plan.keys)
        slot.commit(manifest)
        return {**stats, "changed": True, "sequence": manifest.sequence, "watermark": watermark}

    def _stream(self, write: LakeWrite, staged: Path, log: Any) -> dict[str, Any]:
        """Consume the batches into `staged`; returns row counts and a preview. A long read
        logs its progress (`PROGRESS_S`): the demo console and the run's log show it."""
        rollers: dict[str | None, FileRoller] = {}
        preview: list[dict[str, Any]] = []
        schema = lake_schema(write.schema)
        marks: list[Any] = []
        rows, reported = 0, time.monotonic()

        def roller(value: str | None) -> FileRoller:
            if value not in rollers:
                folder = staged
                if write.split_by:
                    folder = staged / f"{write.split_by}={encode(value)}"
                rollers[value] = FileRoller(
                    folder, schema, write.sort_by, self.rows_per_file, self.row_group_rows
                )
            return rollers[value]

        try:
            for raw in write.batches:
                batch = _conform(raw, schema)
                _check_study(batch, write.study_key)
                if len(preview) < PREVIEW_ROWS:
                    preview += batch.slice(0, PREVIEW_ROWS - len(preview)).to_pylist()
                if write.watermark_by is not None and batch.num_rows:
                    marks.append(pc.max(batch.column(write.watermark_by)).as_py())
                if write.split_by:
                    for value, part in _split(batch, write.split_by):
                        roller(value).write(part)
                elif batch.num_rows:
                    roller(None).write(batch)
                rows += batch.num_rows
                if time.monotonic() - reported >= PROGRESS_S:
                    reported = time.monotonic()
                    log.info(f"{write.entity} of study {write.study_key}: "
                             f"{rows:,} rows read so far")
            if not write.split_by:
                roller(None)  # an empty entity still gets its schema-only file
            for each in rollers.values():
                each.close(write_empty=not write.split_by)
        except BaseException:
            for each in rollers.values():
                each.abort()
            raise
        staged.mkdir(parents=True, exist_ok=True)  # an empty split entity: an empty folder
        return {
            "rows": sum(r.num_rows for r in rollers.values()),
            "by_split": {v: r.num_rows for v, r in rollers.items()} if write.split_by else None,
            "preview": _preview(preview, schema),
            "schema": schema,
            "watermark": _mark_text(max((m for m in marks if m is not None), default=None)),
        }

    @staticmethod
    def _metadata(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        total = sum(r["rows"] for r in results.values())
        first = next(iter(results.values()))
        meta: dict[str, Any] = {
            "dagster/row_count": dg.MetadataValue.int(total),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(f.name, str(f.type)) for f in first["schema"]]
            ),
        }
        if len(results) == 1:
            meta["path"] = dg.MetadataValue.path(first["path"])
            meta["files"] = dg.MetadataValue.int(first["files"])
            if first["version"] is not None:
                meta["lake_version"] = dg.MetadataValue.text(first["version"])
            meta["preview"] = dg.MetadataValue.md(first["preview"])
            if first["by_split"] is not None:
                counts = {
                    NULL_PARTITION if k is None else k: v
                    for k, v in sorted(first["by_split"].items(), key=_key)
                }
                meta["rows_by_form"] = dg.MetadataValue.json(counts)
            meta["mode"] = dg.MetadataValue.text(first["mode"])
            meta["mode_reason"] = dg.MetadataValue.text(first["reason"])
            meta["changed"] = dg.MetadataValue.bool(first["changed"])
            meta["sequence"] = dg.MetadataValue.int(first["sequence"])
            for name in ("inserted", "updated", "deleted"):
                if first.get(name) is not None:
                    meta[f"rows_{name}"] = dg.MetadataValue.int(first[name])
            for name in ("watermark_before", "watermark"):
                if first.get(name) is not None:
                    meta[name if name != "watermark" else "watermark_after"] = (
                        dg.MetadataValue.text(first[name])
                    )
        else:
            counts = {study: r["rows"] for study, r in results.items()}
            meta["rows_by_study"] = dg.MetadataValue.json(counts)
        return meta

    # -- input ----------------------------------------------------------------------------

    def load_input(self, context: dg.InputContext) -> LakeSlice | list[LakeSlice]:
        asset_key = context.asset_key
        entity = asset_key.path[-1]
        if not context.has_asset_partitions:
            raise dg.Failure(
                f"{asset_key.to_user_string()} is partitioned by study; the lake cannot load it "
                "without a study partition"
            )
        slices = [self.read_slice(entity, study) for study in context.asset_partition_keys]
        return slices[0] if len(slices) == 1 else slices

    def incremental_start(self, entity: str, study: str, lag_s: float) -> datetime | None:
        """Where an incremental read of the live slice would start (None: no watermark yet)."""
        manifest = self.slices().manifest(entity, study)
        return read_start(manifest.watermark if manifest else None, lag_s)

    def read_slice(self, entity: str, study: str) -> LakeSlice:
        """The live slice of `entity` for `study`, as local files (on object storage: a local
        copy of the version its manifest names); FileNotFoundError when it was never
        materialized."""
        return self.slices().read(entity, study, _known_schema(entity))


def configured_lake_io_manager(environ: Mapping[str, str] | None = None) -> LakeIOManager:
    """The lake the environment names: `IMEDNET_ASSETS_LAKE_URL` (s3://bucket/prefix on
    `IMEDNET_ASSETS_S3_ENDPOINT_URL`, keys from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` as
    `dg.EnvVar`s, optional `AWS_REGION`), a plain path, or unset: `<data dir>/lake`."""
    env = os.environ if environ is None else environ
    url = (env.get(LAKE_URL_ENV) or "").strip()
    if not is_object_store_url(url):
        return LakeIOManager(root=str(Path(url).expanduser().resolve()) if url else None)

    def secret(name: str) -> dg.EnvVar | None:
        # unset: pyarrow's default chain (a profile, an instance or pod role) finds the keys
        return dg.EnvVar(name) if env.get(name) else None

    return LakeIOManager(
        root=url,
        s3_endpoint_url=env.get(S3_ENDPOINT_URL_ENV) or None,
        aws_access_key_id=secret(AWS_ACCESS_KEY_ID_ENV),
        aws_secret_access_key=secret(AWS_SECRET_ACCESS_KEY_ENV),
        aws_region=env.get(AWS_REGION_ENV) or None,
        version_grace_s=lake_grace_s(env),
    )


def _resolved(value: str | None) -> str | None:
    # inside a run Dagster has already replaced EnvVars by their values; outside one it has not
    return (value.get_value() or None) if isinstance(value, dg.EnvVar) else value


def _key(item: tuple[str | None, int]) -> str:
    return "" if item[0] is None else item[0]


def _known_schema(entity: str) -> pa.Schema | None:
    """The client's fixed schema of an entity, for a slice that holds no files."""
    try:
        from imednet_assets.client.arrow import SCHEMAS
    except ImportError:  # pragma: no cover - the client is part of the package
        return None
    schema = SCHEMAS.get(entity)
    return None if schema is None else lake_schema(schema)
