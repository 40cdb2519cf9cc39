"""A change plan over several keyed entities (the graph: records, subjects and visits; MongoDB's
subjects: subjects and visits), built from `sinks.changes.plan_changes`, which replaces the keys
of one entity only.

This is destination-agnostic and belongs beside `plan_changes` in `sinks/changes.py`; it lives
here because that file is outside this change (MongoDB imports it from here meanwhile).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import APPLY, REWRITE, SKIP, lake_tokens, plan_changes

__all__ = ["APPLY", "REWRITE", "SKIP", "KeyedPlan", "plan_keyed"]


@dataclass(frozen=True)
class KeyedPlan:
    """`action` is skip, apply (`keys`: entity -> its changed keys, only entities that moved)
    or rewrite; `tokens` is what the destination stores once the write succeeded."""

    action: str
    tokens: dict[str, str]
    reason: str
    keys: Mapping[str, frozenset[Any]] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        """How many keys changed over all entities (0 unless apply)."""
        return sum(len(k) for k in self.keys.values())


def plan_keyed(
    slices: Mapping[str, LakeSlice], applied: Mapping[str, str], keyed: Collection[str]
) -> KeyedPlan:
    """The plan for a destination asset built from `slices` that has applied `applied` and can
    replace rows by key for the entities in `keyed` (a change of any other input: rewrite)."""
    whole = plan_changes(slices, applied, None)
    tokens = lake_tokens(slices)
    if whole.action == SKIP:
        return KeyedPlan(SKIP, tokens, whole.reason)
    if not applied or any(s.manifest is None for s in slices.values()):
        return KeyedPlan(REWRITE, tokens, whole.reason)  # no state, or no change log: says why
    if set(applied) != set(tokens):
        return KeyedPlan(REWRITE, tokens, "the asset's inputs changed since the last write")
    moved = sorted(e for e in tokens if applied[e] != tokens[e])
    fixed = [e for e in moved if e not in keyed]
    if fixed:
        return KeyedPlan(REWRITE, tokens, f"changed since the last write: {', '.join(fixed)}")
    keys: dict[str, frozenset[Any]] = {}
    for entity in moved:
        one = plan_changes({entity: slices[entity]}, {entity: applied[entity]}, entity)
        if one.action != APPLY:
            return KeyedPlan(REWRITE, tokens, one.reason)
        keys[entity] = one.keys
    reason = ", ".join(f"{len(k)} changed {e}" for e, k in keys.items())
    return KeyedPlan(APPLY, tokens, reason, keys)
