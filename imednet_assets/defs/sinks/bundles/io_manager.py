"""File bundle IO manager: writes one study's bundle in one format and swaps it in atomically.

The bundle is written into a private temporary folder beside the target
(`.<file>.<run>-<uuid>.tmp/`), fsynced, then moved over the old file with `os.replace` (atomic on
POSIX), and the folder is fsynced: a reader sees the old bundle or the new one, never a part.
One writer per study folder at a time (an OS lock on the folder); what temporary folders exist
when the lock is ours were left by a writer that died, so they are swept.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import dagster as dg
from pydantic import Field

from imednet_assets.defs.lake.files import fsync
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.cells import HeaderMode, study_folder
from imednet_assets.defs.sinks.bundles.content import StudyContent, WriteStats, extraction_time
from imednet_assets.defs.sinks.bundles.csv_zip import write_csv_zip
from imednet_assets.defs.sinks.bundles.jsonl import write_jsonl_zip
from imednet_assets.defs.sinks.bundles.xlsx import write_xlsx
from imednet_assets.defs.sinks.common import (
    DestinationConfigError,
    DestinationError,
    error_detail,
    file_sha256,
)
from imednet_assets.defs.sinks.destination import DestinationIOManager, WriteReport, write_metadata
from imednet_assets.defs.sinks.tabular import StudyTables
from imednet_assets.settings import data_dir, redact

BundleFormat = Literal["csv", "xlsx", "json"]
DESTINATION = "file bundles"
BUNDLES_DIRNAME = "bundles"
TMP_SUFFIX = ".tmp"

#: format -> (file suffix, writer)
WRITERS: dict[str, tuple[str, Callable[[Path, StudyContent], WriteStats]]] = {
    "csv": (".csv.zip", write_csv_zip),
    "xlsx": (".xlsx", write_xlsx),
    "json": (".jsonl.zip", write_jsonl_zip),
}


@dataclass(frozen=True)
class BundleWrite:
    """A bundle to write: format, study, and the lake slices it is made from."""

    fmt: BundleFormat
    study_key: str
    slices: Mapping[str, LakeSlice]
    study_name: str | None = None


def bundle_path(root: Path, study_key: str, fmt: str) -> Path:
    """`<root>/<study folder>/<study folder><suffix>`, e.g. `bundles/CARDIO-01/CARDIO-01.xlsx`."""
    folder = study_folder(study_key)
    return root / folder / f"{folder}{WRITERS[fmt][0]}"


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def stale_temporaries(target: Path) -> list[Path]:
    """Temporary folders of `target` (a finished or failed write removes its own)."""
    return sorted(target.parent.glob(f".{target.name}.*{TMP_SUFFIX}"))


def write_atomically(
    target: Path, write: Callable[[Path], WriteStats], run_id: str = "run"
) -> tuple[WriteStats, str, bool]:
    """Write `target` through `write(temp file)`; returns (stats, sha256, changed).

    An identical bundle leaves the old file untouched (same bytes, same mtime).
    """
    with _folder_lock(target.parent):
        for stale in stale_temporaries(target):
            shutil.rmtree(stale, ignore_errors=True)
        staging = target.parent / f".{target.name}.{run_id}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        staging.mkdir()
        try:
            temp = staging / target.name
            stats = write(temp)
            fsync(temp)
            digest = file_sha256(temp)
            changed = not target.exists() or file_sha256(target) != digest
            if changed:
                os.replace(temp, target)
                fsync(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return stats, digest, changed


class StudyFilesIOManager(DestinationIOManager):
    """A destination that writes files of each study under `<root>/<study>/` (the bundles, the
    statistical exports, the ODM files share `<data dir>/bundles`)."""

    root: str | None = Field(
        default=None, description="Root folder; defaults to <IMEDNET_ASSETS_DATA_DIR>/bundles.")

    def root_path(self) -> Path:
        return Path(self.root) if self.root else data_dir() / BUNDLES_DIRNAME

    def _folder(self, study_key: str) -> Path:
        """The study's folder, created and checked writable before any data is read."""
        folder = self.root_path() / study_folder(study_key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK):
                raise PermissionError("folder is not writable")
        except OSError as err:
            raise DestinationConfigError(
                f"{self.label} at {redact(str(self.root_path()))}: cannot write the folder of "
                f"study {study_key}: {type(err).__name__}: {err.strerror or err}"
            ) from None
        return folder


class BundleIOManager(StudyFilesIOManager):
    """Writes a `BundleWrite` for the run's study partition under `<root>/<study>/`; loading gives
    the bundle's path."""

    label: ClassVar[str] = DESTINATION
    write_type: ClassVar[type] = BundleWrite

    root: str | None = Field(
        default=None,
        description="Bundle root folder; defaults to <IMEDNET_ASSETS_DATA_DIR>/bundles.",
    )
    headers: HeaderMode = Field(
        default="names",
        description="Column headers of the form tables: variable `names` or `labels`.",
    )
    source: str = Field(
        default="iMednet EDC (through the imednet-assets Parquet lake)",
        description="Where the data came from, written to the information sheet.",
    )
    batch_rows: int = Field(default=10_000, ge=1, description="Rows per Arrow batch read.")

    def write(self, obj: BundleWrite, run_id: str = "run") -> dict[str, dg.RawMetadataValue]:
        """Write the bundle; returns its materialization metadata. Raises `DestinationError`."""
        return write_metadata(self.write_bundle(obj, run_id))

    def write_output(self, context: dg.OutputContext, obj: BundleWrite) -> WriteReport:
        return self.write_bundle(obj, context.run_id)

    def write_bundle(self, obj: BundleWrite, run_id: str) -> WriteReport:
        """Write the bundle (no sync state: always from the lake, identical bytes kept)."""
        started = time.monotonic()
        target = bundle_path(self.root_path(), obj.study_key, obj.fmt)
        self._folder(obj.study_key)
        suffix, writer = WRITERS[obj.fmt]
        try:
            with StudyTables(obj.study_key, obj.slices) as tables:
                content = StudyContent(
                    tables,
                    headers=self.headers,
                    source=self.source,
                    extracted_at=extraction_time(obj.slices),
                    study_name=obj.study_name,
                    batch_rows=self.batch_rows,
                )
                stats, digest, changed = write_atomically(
                    target, lambda temp: writer(temp, content), run_id
                )
        except DestinationError:
            raise
        except Exception as err:
            detail = error_detail(err, limit=500)
            raise DestinationError(
                f"{DESTINATION}: the {obj.fmt} bundle of study {obj.study_key} failed "
                f"({target}); the previous bundle is kept: {detail}"
            ) from err
        metadata: dict[str, dg.RawMetadataValue] = {
            "path": dg.MetadataValue.path(str(target)),
            "format": obj.fmt,
            "headers": self.headers,
            "forms": len(stats.rows),
            "rows_by_form": dg.MetadataValue.json(dict(sorted(stats.rows.items()))),
            "batches": content.batches_read,
            "bytes": target.stat().st_size,
            "sha256": digest,
            "unchanged": not changed,
            "seconds": round(time.monotonic() - started, 3),
        }
        if obj.fmt == "xlsx":
            metadata["cut_cells"] = stats.cut_cells
            metadata["sheets"] = dg.MetadataValue.json(
                {m: [name for name, _ in sheets] for m, sheets in sorted(stats.sheets.items())}
            )
        return WriteReport(stats.rows, extra=metadata)

    def load_input(self, context: dg.InputContext) -> Path:
        """The path of the study's bundle in the upstream asset's format."""
        fmt = context.upstream_output.asset_key.path[-1] if context.upstream_output else None
        if fmt not in WRITERS:
            raise dg.Failure(description=f"{DESTINATION}: no bundle format {fmt!r}")
        path = bundle_path(self.root_path(), context.partition_key, fmt)
        if not path.exists():
            raise dg.Failure(
                description=f"{DESTINATION}: no {fmt} bundle of study {context.partition_key} "
                f"at {path}: materialize bundles/{fmt} for that partition first"
            )
        return path
