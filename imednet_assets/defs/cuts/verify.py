"""Checking a cut against its manifest: every file's size and SHA-256 recomputed, files missing
or added, and the manifest's own content digest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imednet_assets.defs.cuts.manifest import (
    MANIFEST_NAME,
    CutManifest,
    cut_dir,
    sha256_file,
)


@dataclass(frozen=True)
class CutCheck:
    """The outcome of verifying one cut: `problems` is empty when it is intact."""

    name: str
    path: Path
    files: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_cut(name: str, root: str | Path | None = None) -> CutCheck:
    """Recompute every file of the cut `name` and compare with its manifest."""
    folder = cut_dir(root, name)
    manifest = CutManifest.read(folder)
    problems: list[str] = []
    stored = json.loads((folder / MANIFEST_NAME).read_text()).get("content_sha256")
    if stored != manifest.content_sha256:
        # the file list was edited (say, to match a changed file) without the digest
        problems.append(f"{MANIFEST_NAME}: content SHA-256 {manifest.content_sha256} of the "
                        f"files it lists, it says {stored}")
    listed = {f.path: f for f in manifest.files}
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    on_disk.discard(MANIFEST_NAME)
    for rel in sorted(set(listed) - on_disk):
        problems.append(f"{rel}: missing (the manifest lists it)")
    for rel in sorted(on_disk - set(listed)):
        problems.append(f"{rel}: not in the manifest (added after the cut was made)")
    for rel in sorted(set(listed) & on_disk):
        expected, path = listed[rel], folder / rel
        size = path.stat().st_size
        if size != expected.size:
            problems.append(f"{rel}: {size} bytes, the manifest says {expected.size}")
        actual = sha256_file(path)
        if actual != expected.sha256:
            problems.append(f"{rel}: SHA-256 {actual}, the manifest says {expected.sha256}")
    return CutCheck(name=name, path=folder, files=len(listed), problems=tuple(problems))
