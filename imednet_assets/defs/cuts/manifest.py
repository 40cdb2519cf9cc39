"""A cut's name rules and its `manifest.json`: every file's path, size and SHA-256, the slices'
API watermarks, the study, and who or what made the cut."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imednet_assets.settings import data_dir

CUTS_DIRNAME = "cuts"
LAKE_DIRNAME = "lake"
MANIFEST_NAME = "manifest.json"
STAGING_DIRNAME = ".staging"
FORMAT_VERSION = 1
MAX_NAME_CHARS = 128
CHUNK_BYTES = 1 << 20
# first a letter or digit: no hidden folder (`.staging`), no `..`, nothing an option parser
# takes for a flag
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class CutError(ValueError):
    """A cut cannot be made, found or read as asked."""


def check_name(name: str) -> str:
    """`name` when it is a valid cut name, else a `CutError` that says the rule."""
    if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
        raise CutError(
            f"cut name {name!r} is refused: use 1 to {MAX_NAME_CHARS} ASCII letters, digits, "
            "'-', '_' or '.', starting with a letter or digit")
    return name


def cuts_root(root: str | Path | None = None) -> Path:
    """Where cuts live: `root`, or `<data dir>/cuts`."""
    return Path(root) if root else data_dir() / CUTS_DIRNAME


def cut_dir(root: str | Path | None, name: str) -> Path:
    return cuts_root(root) / check_name(name)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class CutFile:
    """One frozen file, its path relative to the cut folder (`lake/<entity>/study_key=<S>/…`)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class CutManifest:
    """What a cut holds and how it was made; `content_sha256` covers the study and the files
    only, so two cuts of the same data compare equal whenever and by whomever they were made."""

    name: str
    study_key: str
    created_at: str
    files: tuple[CutFile, ...]
    slices: dict[str, dict[str, Any]]
    """Per entity: the slice's folder in the cut, its watermark, sequence, lake id and rows."""
    made_by: dict[str, Any] = field(default_factory=dict)
    """Dagster run id, job, the run's tags and user where known."""

    @property
    def watermarks(self) -> dict[str, str | None]:
        return {entity: s.get("watermark") for entity, s in sorted(self.slices.items())}

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def content_sha256(self) -> str:
        return content_digest(self.study_key, self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "study_key": self.study_key,
            "created_at": self.created_at,
            "made_by": self.made_by,
            "watermarks": self.watermarks,
            "slices": self.slices,
            "file_count": len(self.files),
            "total_bytes": self.total_bytes,
            "content_sha256": self.content_sha256,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> CutManifest:
        if body.get("format") != FORMAT_VERSION:
            raise CutError(f"cut manifest format {body.get('format')!r} is not "
                           f"{FORMAT_VERSION}")
        files = tuple(CutFile(f["path"], f["size"], f["sha256"]) for f in body["files"])
        return cls(body["name"], body["study_key"], body["created_at"], files,
                   body["slices"], body.get("made_by", {}))

    @classmethod
    def read(cls, folder: Path) -> CutManifest:
        """The manifest of the cut in `folder`; `CutError` when there is no such cut."""
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise CutError(f"no data cut at {folder} (no {MANIFEST_NAME})")
        return cls.from_dict(json.loads(path.read_text()))


def content_digest(study_key: str, files: tuple[CutFile, ...] | list[CutFile]) -> str:
    """SHA-256 over the study and every file's path, size and SHA-256, in path order."""
    rows = [[f.path, f.size, f.sha256] for f in sorted(files, key=lambda f: f.path)]
    return hashlib.sha256(_canonical({"study_key": study_key, "files": rows})).hexdigest()
