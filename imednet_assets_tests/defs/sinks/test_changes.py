"""`plan_keyed`: skip, apply (keys per entity) or rewrite, from manifests and a stored state."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import plan_keyed

KEYED = ("records", "visits")


def _slice(entity: str, manifest: SliceManifest | None) -> LakeSlice:
    return LakeSlice(entity, "A", Path("/nowhere"), [], pa.schema([]), manifest)


def _lake() -> dict[str, SliceManifest]:
    return {e: SliceManifest.first(e, "A", f"{e}_id", 3, None)
            for e in ("forms", "records", "visits")}


def _plan(manifests: dict[str, SliceManifest | None], applied: dict[str, str]):
    return plan_keyed({e: _slice(e, m) for e, m in manifests.items()}, applied, KEYED)


def _tokens(manifests: dict[str, SliceManifest]) -> dict[str, str]:
    return {e: m.token for e, m in manifests.items()}


def test_skip_apply_and_rewrite() -> None:
    lake = _lake()
    applied = _tokens(lake)
    assert _plan(lake, {}).action == "rewrite"
    assert _plan(lake, applied).action == "skip"

    moved = {**lake, "records": lake["records"].after_merge(4, None, [7, 8]),
             "visits": lake["visits"].after_merge(3, None, [2])}
    moved["records"] = moved["records"].after_merge(4, None, [8, 9])
    plan = _plan(moved, applied)
    assert (plan.action, dict(plan.keys), plan.changed) == (
        "apply", {"records": {7, 8, 9}, "visits": {2}}, 4)
    assert plan.reason == "3 changed records, 1 changed visits"
    assert plan.tokens == _tokens(moved)
    assert _plan(moved, plan.tokens).action == "skip"


def test_anything_not_applicable_by_key_rewrites() -> None:
    lake = _lake()
    applied = _tokens(lake)
    forms = {**lake, "forms": lake["forms"].after_merge(3, None, [1])}
    assert _plan(forms, applied).reason == "changed since the last write: forms"
    full = {**lake, "records": lake["records"].after_full(3, None)}
    assert "does not reach back" in _plan(full, applied).reason
    relineaged = {**lake, "visits": SliceManifest.first("visits", "A", "visit_id", 3, None)}
    assert _plan(relineaged, applied).action == "rewrite"
    assert "no change log" in _plan({**lake, "visits": None}, applied).reason
    assert _plan(lake, {**applied, "sites": "x:1"}).reason == (
        "the asset's inputs changed since the last write")
