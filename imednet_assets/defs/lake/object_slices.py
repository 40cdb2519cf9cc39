"""The lake on S3-compatible object storage. Object stores have no atomic rename, so slices are
versioned: a writer stages the new slice locally exactly as the local lake does, uploads its files
under a fresh version folder of the slice (files the live version holds with the same bytes are
referenced, not uploaded again), then replaces the slice's one manifest object (`_slice.json`) in
a single PUT. Readers go through that manifest only, and read a local copy of the version it
names. A later writer of the slice deletes what no manifest names once the grace period has
passed, so a reader still on an old version keeps working.

Writers of one slice on different machines are kept apart by Dagster's run queue: one run per
study at a time (the `dagster/partition` tag concurrency limit in dagster.yaml); a file lock
still serialises the writers on one machine. Should two writers race anyway, nothing is
corrupted: the manifest PUT is the only commit point, and just before it a writer reads the
manifest again and gives up (`LostRace`) when another writer committed since it started, so the
slice is always one writer's whole version, and the loser's files are an orphan the sweep
removes. (pyarrow offers no conditional PUT, so a window of one GET and one PUT remains; the
grace period, longer than any write, keeps a sweep from touching files still being uploaded.)
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from imednet_assets.defs.lake.local import staging_dirs, study_lock
from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.object_store import ObjectStore
from imednet_assets.defs.lake.read_cache import ReadCache
from imednet_assets.defs.lake.slice import LakeSlice, study_folder_name
from imednet_assets.defs.lake.version_manifest import (
    SLICE_OBJECT,
    VERSION_PREFIX,
    VersionFile,
    VersionManifest,
    new_version_id,
    version_folder,
)

READ_ATTEMPTS = 3
"""A reader whose version was swept while it downloaded reads the manifest again this often."""
HASH_CHUNK = 1 << 20


class LostRace(RuntimeError):
    """Another writer committed the slice while this one was writing: this write is dropped."""


def before_manifest_put(url: str) -> None:
    """Runs after a version's files are uploaded and before its manifest replaces the live one:
    the moment a crash leaves an orphan version (the crash tests kill a writer here)."""


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ObjectStoreWriter:
    """One writer's hold on an object-store slice: stage into `staged`, `commit` publishes it."""

    def __init__(self, slices: ObjectStoreSlices, entity: str, study_key: str, staged: Path,
                 current: VersionManifest | None) -> None:
        self.slices, self.entity, self.study_key, self.staged = slices, entity, study_key, staged
        self.current = current
        self._digests: dict[Path, str] = {}

    def manifest(self) -> SliceManifest | None:
        return self.current.slice if self.current else None

    def live(self) -> Path | None:
        """A local copy of the live version (downloaded unless this machine has it)."""
        if self.current is None:
            return None
        return self.slices.local_copy(self.entity, self.study_key, self.current)

    def holds(self, staged: Path) -> bool:
        """True when `staged` holds exactly the live version's files (compared by digest, so
        a replay of unchanged data downloads nothing)."""
        if self.current is None:
            return False
        live = self.current.by_path()
        mine = self._staged_files(staged)
        return sorted(live) == sorted(mine) and all(
            live[rel].size == path.stat().st_size and live[rel].sha256 == self._digest(path)
            for rel, path in mine.items()
        )

    def commit(self, manifest: SliceManifest) -> None:
        """Upload the new files under a fresh version, then replace the manifest object."""
        store, slice_path = self.slices.store, self.slices.slice_path(self.entity, self.study_key)
        version = new_version_id(manifest.sequence)
        live = self.current.by_path() if self.current else {}
        files: list[VersionFile] = []
        uploads: list[tuple[Path, str]] = []
        for rel, path in sorted(self._staged_files(self.staged).items()):
            size, digest = path.stat().st_size, self._digest(path)
            held = live.get(rel)
            if held is not None and (held.size, held.sha256) == (size, digest):
                files.append(held)  # same bytes already stored: referenced, not uploaded
                continue
            entry = VersionFile(rel, version, size, digest)
            files.append(entry)
            uploads.append((path, f"{slice_path}/{entry.key}"))
        store.upload(uploads)
        location = self.slices.location(self.entity, self.study_key)
        before_manifest_put(location)
        latest = self.slices.current(self.entity, self.study_key)
        if _version(latest) != _version(self.current):
            raise LostRace(
                f"another writer committed the slice at {location} (version "
                f"{_version(latest)}) while this one wrote on version {_version(self.current)}; "
                "this write is dropped (its files are left for the sweep)"
            )
        grace = self.slices.grace_s
        published = (self.current.successor(version, files, manifest, grace) if self.current
                     else VersionManifest(version, tuple(files), manifest))
        store.put_bytes(f"{slice_path}/{SLICE_OBJECT}", published.to_json())
        self.current = published
        # committed: keeping the staged files as this machine's copy only saves a download
        with contextlib.suppress(OSError):
            self.slices.cache.adopt(self.entity, self.study_key, version, self.staged, manifest)

    def keep_changes(self, lake_id: str, sequence: int, rows: pa.Table) -> None:
        """None kept: the destinations of an object-store lake search the slice."""

    def file_count(self) -> int:
        return len(self.current.files) if self.current else 0

    def version(self) -> str | None:
        return self.current.version if self.current else None

    def _staged_files(self, staged: Path) -> dict[str, Path]:
        return {p.relative_to(staged).as_posix(): p for p in staged.rglob("*.parquet")}

    def _digest(self, path: Path) -> str:
        if path not in self._digests:
            self._digests[path] = file_digest(path)
        return self._digests[path]


def _version(manifest: VersionManifest | None) -> str | None:
    return manifest.version if manifest else None


class ObjectStoreSlices:
    """The lake's slices in `store`: `<prefix>/<entity>/study_key=<S>/_slice.json` plus its
    version folders; local staging, locks and version copies under `cache_root`."""

    def __init__(self, store: ObjectStore, cache_root: Path, grace_s: float) -> None:
        self.store, self.cache_root, self.grace_s = store, cache_root, grace_s
        self.cache = ReadCache(cache_root, grace_s)

    def slice_path(self, entity: str, study_key: str) -> str:
        return self.store.path(entity, study_folder_name(study_key))

    def location(self, entity: str, study_key: str) -> str:
        return self.store.url_of(entity, study_folder_name(study_key))

    def current(self, entity: str, study_key: str) -> VersionManifest | None:
        """The slice's live manifest; None when the slice was never written."""
        data = self.store.get_bytes(f"{self.slice_path(entity, study_key)}/{SLICE_OBJECT}")
        return None if data is None else VersionManifest.from_json(data)

    def manifest(self, entity: str, study_key: str) -> SliceManifest | None:
        current = self.current(entity, study_key)
        return current.slice if current else None

    def local_copy(self, entity: str, study_key: str, current: VersionManifest) -> Path:
        """The folder of `current`'s version on this machine, downloaded when missing."""
        slice_path = self.slice_path(entity, study_key)

        def fetch(folder: Path) -> None:
            self.store.download((f"{slice_path}/{f.key}", folder / f.path)
                                for f in current.files)
            for f in current.files:
                if (folder / f.path).stat().st_size != f.size:
                    raise OSError(f"{self.location(entity, study_key)}/{f.key} does not have the "
                                  f"size its manifest gives ({f.size} bytes)")

        return self.cache.get(entity, study_key, current.version, current.slice, fetch)

    def read(self, entity: str, study_key: str, schema: pa.Schema | None) -> LakeSlice:
        """The live slice as local files; FileNotFoundError when it was never written."""
        for attempt in range(READ_ATTEMPTS):
            current = self.current(entity, study_key)
            if current is None:
                raise FileNotFoundError(
                    f"no lake slice of {entity} for study {study_key!r} at "
                    f"{self.location(entity, study_key)}: materialize imednet/{entity} for "
                    f"partition {study_key!r} first"
                )
            try:
                path = self.local_copy(entity, study_key, current)
            except FileNotFoundError:
                # a writer replaced the version and its grace ran out while we downloaded
                if attempt == READ_ATTEMPTS - 1:
                    raise
                continue
            except OSError as exc:
                raise OSError(self.store.redact(
                    f"reading the lake slice of {entity} for study {study_key!r} at "
                    f"{self.location(entity, study_key)} failed: {exc}")) from exc
            return LakeSlice.at(path, entity, study_key, schema)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def writer(self, entity: str, study_key: str, run_id: str,
               log: Any) -> Iterator[ObjectStoreWriter]:
        """The slice held for one writer on this machine; afterwards what no manifest names and
        has outlived the grace period is swept."""
        study_staging, staged = staging_dirs(self.cache_root, entity, study_key, run_id)
        with study_lock(self.cache_root, entity, study_key, role="writer"):
            # staging left here was a dead writer's (the lock is ours)
            shutil.rmtree(study_staging, ignore_errors=True)
            try:
                yield ObjectStoreWriter(self, entity, study_key, staged,
                                        self.current(entity, study_key))
            finally:
                shutil.rmtree(study_staging, ignore_errors=True)
            try:
                self.sweep(entity, study_key)
            except OSError as exc:  # the slice is written; the next writer sweeps again
                log.warning(self.store.redact(
                    f"sweeping old versions of {self.location(entity, study_key)} failed: "
                    f"{type(exc).__name__}: {exc}"))

    def sweep(self, entity: str, study_key: str, now: float | None = None) -> list[str]:
        """Delete the slice's objects that the live manifest does not name, unless their version
        was replaced less than the grace period ago or they were stored less than that ago (a
        writer on another machine may still be uploading them). Returns the versions touched."""
        now = time.time() if now is None else now
        cutoff = now - self.grace_s
        slice_path = self.slice_path(entity, study_key)
        current = self.current(entity, study_key)
        named = {f"{slice_path}/{f.key}" for f in current.files} if current else set()
        recent = {r.version for r in current.retired if r.at > cutoff} if current else set()
        if current is not None:
            recent.add(current.version)
        by_version: dict[str, list[Any]] = {}
        for info in self.store.list_files(slice_path):
            head = info.path[len(slice_path) + 1:].split("/", 1)[0]
            if head.startswith(VERSION_PREFIX):
                by_version.setdefault(head.removeprefix(VERSION_PREFIX), []).append(info)
        touched = []
        for version, infos in sorted(by_version.items()):
            if version in recent:
                continue
            doomed = [i for i in infos if i.path not in named
                      and i.mtime is not None and i.mtime.timestamp() <= cutoff]
            if not doomed:
                continue
            if len(doomed) == len(infos):
                self.store.delete_dir(f"{slice_path}/{version_folder(version)}")
            else:
                for info in doomed:
                    self.store.delete_file(info.path)
            touched.append(version)
        return touched
