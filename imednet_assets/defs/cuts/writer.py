"""Freezing a study's live lake slices into a cut: staged beside the cuts, made read-only, then
renamed into place in one step, so a cut is either whole or absent.

Files are hard-linked when the lake is on the same file system (no copy; the lake only ever
replaces files, never writes into one, so the shared inode made read-only stays as frozen), else
copied. Folder and file times are kept: exports stamp the newest of them as the extraction time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from imednet_assets.defs.cuts.manifest import (
    LAKE_DIRNAME,
    MANIFEST_NAME,
    STAGING_DIRNAME,
    CutError,
    CutFile,
    CutManifest,
    content_digest,
    cut_dir,
    cuts_root,
    sha256_file,
)
from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.slice import LakeSlice, study_dir

READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555
COPY_ATTEMPTS = 3
"""A writer may swap a slice while it is frozen; the copy is retried this often."""


class SliceReader(Protocol):
    """What a cut needs of the lake: `LakeIOManager.read_slice` (local or object storage)."""

    def read_slice(self, entity: str, study: str) -> LakeSlice: ...


def _token(folder: Path) -> str | None:
    manifest = SliceManifest.read(folder)
    return manifest.token if manifest else None


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system (or one without hard links): a copy, times kept
        shutil.copy2(source, target)


def _freeze_slice(piece: LakeSlice, target: Path) -> None:
    """Every file of the slice's folder into `target`, then the folders' times as the lake's."""
    for source in sorted(piece.path.rglob("*")):
        rel = source.relative_to(piece.path)
        if source.is_dir():
            (target / rel).mkdir(parents=True, exist_ok=True)
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(source, target / rel)
    for source in [piece.path, *sorted(p for p in piece.path.rglob("*") if p.is_dir())]:
        times = source.stat()
        os.utime(target / source.relative_to(piece.path), ns=(times.st_atime_ns,
                                                               times.st_mtime_ns))


def freeze_entity(lake: SliceReader, entity: str, study: str, lake_copy: Path) -> LakeSlice:
    """The live slice of `entity` copied under `lake_copy` in the lake's layout, unchanged by any
    swap that happened meanwhile (the slice manifest's token is the same before and after)."""
    target = study_dir(lake_copy, entity, study)
    for _attempt in range(COPY_ATTEMPTS):
        piece = lake.read_slice(entity, study)
        before = piece.manifest.token if piece.manifest else None
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            _freeze_slice(piece, target)
        except FileNotFoundError:  # a swap took files away mid-copy
            continue
        if _token(target) == before == _token(piece.path):
            return LakeSlice.at(target, entity, study, piece.schema)
    raise CutError(f"the lake slice of {entity} for study {study!r} changed during each of "
                   f"{COPY_ATTEMPTS} attempts to freeze it; try again when its writes are done")


def _files(folder: Path) -> list[CutFile]:
    return [CutFile(str(p.relative_to(folder)), p.stat().st_size, sha256_file(p))
            for p in sorted(folder.rglob("*")) if p.is_file()]


def _make_read_only(folder: Path, *, top: bool) -> None:
    """Files 0444, folders 0555, deepest first (`top`: the folder itself too)."""
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        os.chmod(path, READ_ONLY_DIR if path.is_dir() else READ_ONLY_FILE)
    if top:
        os.chmod(folder, READ_ONLY_DIR)


def is_read_only(path: Path) -> bool:
    """True when nobody may write `path` by its mode bits."""
    return not stat.S_IMODE(path.stat().st_mode) & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def _existing(target: Path, name: str, manifest: CutManifest) -> CutManifest:
    """The cut already at `target` when it holds exactly `manifest`'s content, else an error:
    a cut name is never given to other data."""
    held = CutManifest.read(target)
    if held.content_sha256 == manifest.content_sha256:
        return held
    raise CutError(
        f"data cut {name!r} already exists with other content (study {held.study_key!r}, "
        f"{len(held.files)} files, made {held.created_at}); a cut is never overwritten: "
        "choose another name")


def make_cut(
    lake: SliceReader, study: str, name: str, entities: Iterable[str], *,
    root: str | Path | None = None, made_by: Mapping[str, Any] | None = None,
) -> tuple[CutManifest, bool]:
    """Freeze `study`'s slices of `entities` as the cut `name` under `root` (default
    `<data dir>/cuts`); returns its manifest and whether it was made now (False: a cut of that
    name already held exactly this content, and was left as it was)."""
    target = cut_dir(root, name)
    staging = cuts_root(root) / STAGING_DIRNAME / f"{name}-{uuid.uuid4().hex}"
    try:
        slices = {}
        for entity in sorted(entities):
            piece = freeze_entity(lake, entity, study, staging / LAKE_DIRNAME)
            mark = piece.manifest
            slices[entity] = {
                "path": str(piece.path.relative_to(staging)),
                "watermark": mark.watermark if mark else None,
                "sequence": mark.sequence if mark else None,
                "lake_id": mark.lake_id if mark else None,
                "rows": piece.num_rows,
            }
        files = _files(staging)
        manifest = CutManifest(
            name=name, study_key=study,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            files=tuple(files), slices=slices, made_by=dict(made_by or {}))
        assert manifest.content_sha256 == content_digest(study, files)
        if target.exists():
            return _existing(target, name, manifest), False
        (staging / MANIFEST_NAME).write_bytes(manifest.to_bytes())
        _make_read_only(staging, top=False)
        try:
            os.rename(staging, target)
        except OSError:
            if not target.exists():
                raise
            return _existing(target, name, manifest), False  # made meanwhile by another run
        os.chmod(target, READ_ONLY_DIR)
        return manifest, True
    finally:
        _remove(staging)


def _remove(folder: Path) -> None:
    """Remove a staged cut (its folders may already be read-only), and the staging folder when
    no other cut is being made."""
    if folder.exists():
        for path in folder.rglob("*"):
            if path.is_dir():
                os.chmod(path, 0o755)
        shutil.rmtree(folder)
    with contextlib.suppress(OSError):  # not empty: another cut is being staged
        folder.parent.rmdir()
