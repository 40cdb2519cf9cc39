"""Local copies of object-store slice versions, for readers that want files (DuckDB's
`read_parquet`, pyarrow datasets) and for merges: `<root>/<entity>/study_key=<S>/v-<version>/`,
the same layout as a local slice. A version never changes once committed, so a copy keyed by its
id is never stale; copies of older versions go once nobody was handed them for the grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.slice import study_dir
from imednet_assets.defs.lake.version_manifest import VERSION_PREFIX, version_folder

PARTIAL_PREFIX = ".partial-"


class ReadCache:
    """Version copies under `root`, dropped `grace_s` after they were last handed out."""

    def __init__(self, root: Path, grace_s: float) -> None:
        self.root, self.grace_s = root, grace_s

    def version_dir(self, entity: str, study_key: str, version: str) -> Path:
        return study_dir(self.root, entity, study_key) / version_folder(version)

    def get(self, entity: str, study_key: str, version: str, manifest: SliceManifest,
            fetch: Callable[[Path], None]) -> Path:
        """The local folder of `version`; `fetch(folder)` fills a new copy (a download), which
        appears under its name only once complete."""
        target = self.version_dir(entity, study_key, version)
        if not target.is_dir():
            partial = target.parent / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
            try:
                partial.mkdir(parents=True)
                fetch(partial)
                self._place(partial, target, manifest)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return self._handed_out(entity, study_key, version)

    def adopt(self, entity: str, study_key: str, version: str, staged: Path,
              manifest: SliceManifest) -> Path:
        """A writer's staged folder becomes the copy of the version it has just committed, so
        the writer's own later reads and merges download nothing."""
        self._place(staged, self.version_dir(entity, study_key, version), manifest)
        return self._handed_out(entity, study_key, version)

    def _place(self, folder: Path, target: Path, manifest: SliceManifest) -> None:
        manifest.write(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(folder, target)
        except OSError:
            if not target.is_dir():  # not "another process placed it first"
                raise

    def _handed_out(self, entity: str, study_key: str, version: str) -> Path:
        target = self.version_dir(entity, study_key, version)
        # the folder's time is when it was last handed out: the clock of its grace period
        with contextlib.suppress(FileNotFoundError):
            os.utime(target)
        self.evict(entity, study_key, keep=version)
        return target

    def evict(self, entity: str, study_key: str, keep: str) -> None:
        """Drop copies of other versions (and abandoned partial downloads) nobody was handed
        for the grace period."""
        folder = study_dir(self.root, entity, study_key)
        cutoff = time.time() - self.grace_s
        for entry in folder.iterdir() if folder.is_dir() else ():
            if entry.name == version_folder(keep) or not entry.name.startswith(
                (VERSION_PREFIX, PARTIAL_PREFIX)
            ):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime <= cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
