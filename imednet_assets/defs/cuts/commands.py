"""The `cut-export` and `cut-verify` commands: one line per outcome, exit 1 on a problem."""

from __future__ import annotations

import sys
from pathlib import Path

from imednet_assets.defs.cuts.export import export_cut
from imednet_assets.defs.cuts.manifest import CutError
from imednet_assets.defs.cuts.verify import verify_cut


def run_cut_export(name: str, study: str, to: Path, root: str | Path | None = None) -> int:
    """Every file export of `study` from the cut `name` into `to`."""
    try:
        result = export_cut(name, study, to, root=root)
    except CutError as err:
        print(f"imednet-assets cut-export: {err}", file=sys.stderr)
        return 1
    written = sorted(str(p.relative_to(to)) for p in Path(to).rglob("*") if p.is_file())
    print(f"exported study {study} from data cut {name} into {to} (run {result.run_id}):")
    for rel in written:
        print(f"  {rel}")
    return 0


def run_cut_verify(name: str, root: str | Path | None = None) -> int:
    """Recompute every SHA-256 of the cut `name`; each difference on its own line."""
    try:
        check = verify_cut(name, root)
    except CutError as err:
        print(f"imednet-assets cut-verify: {err}", file=sys.stderr)
        return 1
    if check.ok:
        print(f"data cut {name}: {check.files} files match the manifest at {check.path}")
        return 0
    print(f"data cut {name}: {len(check.problems)} differences from the manifest at "
          f"{check.path}:", file=sys.stderr)
    for problem in check.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
