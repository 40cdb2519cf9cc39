"""The one object that says what an object-store slice is: `<slice>/_slice.json` names the live
version, lists its files (each in the version folder that first stored it), keeps the slice
manifest (watermark, change log, sequence) and remembers recently replaced versions, which stay
readable for a grace period. Replacing this object in one PUT is the slice's only commit point.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from imednet_assets.defs.lake.manifest import SliceManifest

SLICE_OBJECT = "_slice.json"
VERSION_PREFIX = "v-"
FORMAT = 1


def new_version_id(sequence: int) -> str:
    """Unique whichever machine writes; the sequence first, so listings read in order."""
    return f"{sequence:08d}-{uuid.uuid4().hex[:12]}"


def version_folder(version: str) -> str:
    return f"{VERSION_PREFIX}{version}"


@dataclass(frozen=True)
class VersionFile:
    """One Parquet file of the slice: its place in the slice's layout (`form_key=F/part-…`),
    the version folder holding its bytes, its size and SHA-256 (to tell unchanged files)."""

    path: str
    version: str
    size: int
    sha256: str

    @property
    def key(self) -> str:
        """The object's name under the slice's prefix."""
        return f"{version_folder(self.version)}/{self.path}"


@dataclass(frozen=True)
class Retired:
    """A version the slice left at `at` (seconds since the epoch, the writer's clock)."""

    version: str
    at: float


@dataclass(frozen=True)
class VersionManifest:
    """The live version of one slice, its files, and the versions that may still be read."""

    version: str
    files: tuple[VersionFile, ...]
    slice: SliceManifest
    retired: tuple[Retired, ...] = field(default_factory=tuple)

    def by_path(self) -> dict[str, VersionFile]:
        return {f.path: f for f in self.files}

    def successor(self, version: str, files: list[VersionFile], slice_manifest: SliceManifest,
                  grace_s: float, now: float | None = None) -> VersionManifest:
        """The manifest replacing this one: this version joins the retired ones, which are
        forgotten once their grace has passed (the sweep then treats them as any orphan)."""
        now = time.time() if now is None else now
        kept = tuple(r for r in self.retired if r.at > now - grace_s)
        return VersionManifest(version, tuple(files), slice_manifest,
                               (*kept, Retired(self.version, now)))

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "version": self.version,
            "files": [{"path": f.path, "version": f.version, "size": f.size, "sha256": f.sha256}
                      for f in self.files],
            "retired": [{"version": r.version, "at": r.at} for r in self.retired],
            "slice": self.slice.to_dict(),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> VersionManifest:
        body: dict[str, Any] = json.loads(data)
        if body.get("format") != FORMAT:
            raise ValueError(f"unknown slice manifest format {body.get('format')!r}")
        return cls(
            version=body["version"],
            files=tuple(VersionFile(f["path"], f["version"], f["size"], f["sha256"])
                        for f in body["files"]),
            slice=SliceManifest.from_dict(body["slice"]),
            retired=tuple(Retired(r["version"], r["at"]) for r in body["retired"]),
        )
