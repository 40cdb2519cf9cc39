"""The lake on a local disk: a writer stages a slice folder and swaps it in by rename, so a reader
sees the old slice or the new one, never a mix. File locks serialise the writers of one slice
among the processes of this machine."""

from __future__ import annotations

import contextlib
import fcntl
import filecmp
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from imednet_assets.defs.lake.files import fsync, parquet_writer
from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.slice import (
    CHANGES_SUFFIX,
    LOCK_DIR,
    STAGING_DIR,
    TRASH_DIR,
    LakeSlice,
    change_file_name,
    changes_dir,
    entity_dir,
    study_dir,
    study_folder_name,
)


def same_parquet(staged: Path, target: Path) -> bool:
    """True when `staged` holds exactly the Parquet files of `target`, byte for byte."""
    if not target.is_dir():
        return False
    mine = sorted(p.relative_to(staged) for p in staged.rglob("*.parquet"))
    theirs = sorted(p.relative_to(target) for p in target.rglob("*.parquet"))
    return mine == theirs and all(
        filecmp.cmp(staged / rel, target / rel, shallow=False) for rel in mine
    )


CHANGES_KEPT = 8
"""Merges whose rows are kept beside a slice: a destination further behind (or a lake without
them) has the changed keys' rows searched in the slice instead, which costs more, not less."""
PART_SUFFIX = ".part"


def keep_changes(target: Path, lake_id: str, sequence: int, rows: pa.Table) -> None:
    """Keep the rows merge `sequence` writes into the slice at `target` (written before the
    slice is swapped in: a merge that never commits leaves a file no manifest names, which
    the next merge of that sequence replaces), and forget those older than `CHANGES_KEPT`."""
    folder = changes_dir(target)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / change_file_name(lake_id, sequence)
    part = folder / f".{uuid.uuid4().hex}{PART_SUFFIX}"
    with parquet_writer(part, rows.schema) as writer:
        writer.write_table(rows)
    fsync(part)
    os.replace(part, path)
    oldest = change_file_name(lake_id, max(1, sequence - CHANGES_KEPT + 1))
    for old in folder.iterdir():
        # the slice's writers take turns: a part file here is a dead writer's
        if old.name.endswith(PART_SUFFIX) or (old.name.endswith(CHANGES_SUFFIX) and (
                not old.name.startswith(f"{lake_id}-") or old.name < oldest)):
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def study_lock(root: Path, entity: str, study_key: str, role: str = "swap") -> Iterator[None]:
    """Serialise one study folder's swaps and recovery (`swap`), or its writers (`writer`),
    across processes. The OS drops the lock when its process dies, so a killed writer never
    blocks the next one."""
    locks = entity_dir(root, entity) / LOCK_DIR
    locks.mkdir(parents=True, exist_ok=True)
    suffix = "" if role == "swap" else f".{role}"
    with open(locks / f"{study_folder_name(study_key)}{suffix}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def staging_dirs(root: Path, entity: str, study_key: str, run_id: str) -> tuple[Path, Path]:
    """(the study's staging folder, where this writer stages the slice inside it)."""
    name = study_folder_name(study_key)
    study_staging = entity_dir(root, entity) / STAGING_DIR / name
    return study_staging, study_staging / f"{run_id}-{uuid.uuid4().hex}" / name


def _trash_entries(root: Path, entity: str, study_key: str) -> list[Path]:
    trash = entity_dir(root, entity) / TRASH_DIR
    prefix = study_folder_name(study_key) + "."
    if not trash.is_dir():
        return []
    return [p for p in trash.iterdir() if p.name.startswith(prefix)]


def recover(root: Path, entity: str, study_key: str) -> None:
    """Finish a swap a crash interrupted: no study folder but an old one in the trash -> put it
    back; a study folder and leftover trash -> the swap had finished, drop the trash."""
    target = study_dir(root, entity, study_key)
    leftovers = _trash_entries(root, entity, study_key)
    if not target.exists() and leftovers:
        newest = max(leftovers, key=lambda p: p.stat().st_mtime_ns)
        os.rename(newest, target)
        leftovers.remove(newest)
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)


def swap(root: Path, entity: str, study_key: str, staged: Path) -> None:
    """old -> trash, staged -> place, remove trash; the two renames are the only visible steps."""
    target = study_dir(root, entity, study_key)
    trash = entity_dir(root, entity) / TRASH_DIR / f"{target.name}.{uuid.uuid4().hex}"
    with study_lock(root, entity, study_key):
        recover(root, entity, study_key)
        if target.exists():
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(target, trash)
        os.rename(staged, target)
        fsync(target.parent)
        shutil.rmtree(trash, ignore_errors=True)


class LocalWriter:
    """One writer's hold on a local slice: stage into `staged`, `commit` swaps it in."""

    def __init__(self, root: Path, entity: str, study_key: str, staged: Path) -> None:
        self.root, self.entity, self.study_key, self.staged = root, entity, study_key, staged
        self.target = study_dir(root, entity, study_key)

    def manifest(self) -> SliceManifest | None:
        return SliceManifest.read(self.target) if self.target.is_dir() else None

    def live(self) -> Path | None:
        """The folder of the live slice's files; None when it was never written."""
        return self.target if self.target.is_dir() else None

    def holds(self, staged: Path) -> bool:
        return same_parquet(staged, self.target)

    def commit(self, manifest: SliceManifest) -> None:
        manifest.write(self.staged)
        swap(self.root, self.entity, self.study_key, self.staged)

    def keep_changes(self, lake_id: str, sequence: int, rows: pa.Table) -> None:
        keep_changes(self.target, lake_id, sequence, rows)

    def file_count(self) -> int:
        return len(list(self.target.rglob("*.parquet")))

    def version(self) -> str | None:
        return None


class LocalSlices:
    """The lake's slices under the folder `root`: `<root>/<entity>/study_key=<S>/`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def location(self, entity: str, study_key: str) -> str:
        return str(study_dir(self.root, entity, study_key))

    @contextlib.contextmanager
    def writer(self, entity: str, study_key: str, run_id: str, log: Any) -> Iterator[LocalWriter]:
        """The slice held for one writer; a swap a dead writer left half done is finished first."""
        study_staging, staged = staging_dirs(self.root, entity, study_key, run_id)
        # one writer per study slice at a time; whatever staging of this study exists when the
        # writer lock is ours was left by a writer that died (a killed process), so it goes
        with study_lock(self.root, entity, study_key, role="writer"):
            shutil.rmtree(study_staging, ignore_errors=True)
            try:
                with study_lock(self.root, entity, study_key):
                    recover(self.root, entity, study_key)
                yield LocalWriter(self.root, entity, study_key, staged)
            finally:
                shutil.rmtree(study_staging, ignore_errors=True)

    def manifest(self, entity: str, study_key: str) -> SliceManifest | None:
        target = study_dir(self.root, entity, study_key)
        return SliceManifest.read(target) if target.is_dir() else None

    def read(self, entity: str, study_key: str, schema: pa.Schema | None) -> LakeSlice:
        """The live slice (a swap a dead writer left half done is finished first)."""
        with study_lock(self.root, entity, study_key):
            recover(self.root, entity, study_key)
        return LakeSlice.read(self.root, entity, study_key, schema)
