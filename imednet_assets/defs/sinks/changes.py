"""What a destination must do for a study, from the lake's change logs and what it has applied.

Every destination asset stores, inside the destination and in the same transaction as its rows,
the lake token (`<lake lineage>:<sequence>`) of each lake slice it was built from. Comparing those
with the slices' manifests gives one of three plans: nothing to do, apply the changed keys of one
entity (delete them, insert their new rows), or rewrite the study's slice (the log no longer
reaches back, a full refresh happened, the dictionary changed, or the destination is new).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from imednet_assets.defs.lake.slice import LakeSlice

SKIP = "skip"
APPLY = "apply"
REWRITE = "rewrite"

#: A SQL destination's sync state table: one row per asset, study and lake entity.
SYNC_STATE_COLUMNS = ("asset", "study_key", "entity", "lake_token")


@dataclass(frozen=True)
class SyncStateSql:
    """The statements on a SQL destination's sync state table in its dialect: `table` as the
    dialect refers to it, `column(name)` a column as it spells it, `param` its placeholder.
    Both statements bind the asset, then the study."""

    table: str
    column: Callable[[str], str]
    param: str

    def select(self) -> str:
        """(entity, lake_token) an asset stored for a study."""
        asset, study, entity, token = map(self.column, SYNC_STATE_COLUMNS)
        return (f"SELECT {entity}, {token} FROM {self.table} "
                f"WHERE {asset} = {self.param} AND {study} = {self.param} ORDER BY {entity}")

    def delete(self) -> str:
        """Forget what an asset stored for a study (before storing the new tokens)."""
        asset, study = map(self.column, SYNC_STATE_COLUMNS[:2])
        return f"DELETE FROM {self.table} WHERE {asset} = {self.param} AND {study} = {self.param}"


@dataclass(frozen=True)
class ChangePlan:
    """`action` is skip, apply (the `keys` of `entity` changed) or rewrite; `tokens` is what the
    destination stores once the write commits; `reason` says why, for the metadata."""

    action: str
    tokens: dict[str, str]
    reason: str
    entity: str | None = None
    keys: frozenset[Any] = field(default_factory=frozenset)


def lake_tokens(slices: Mapping[str, LakeSlice]) -> dict[str, str]:
    """entity -> the lake token of its slice (`-` for a slice without a manifest, which is
    always rewritten: nothing tells what changed in it)."""
    return {e: (s.manifest.token if s.manifest else "-") for e, s in sorted(slices.items())}


def plan_changes(
    slices: Mapping[str, LakeSlice], applied: Mapping[str, str], keyed: str | None
) -> ChangePlan:
    """The plan for one destination asset built from `slices`, which has applied `applied`.

    `keyed` is the one entity whose rows the asset can replace by key (records for the form
    tables, subjects for subjects, ...); a change of any other input means a rewrite.
    """
    tokens = lake_tokens(slices)
    unknown = sorted(e for e, s in slices.items() if s.manifest is None)
    if unknown:
        return ChangePlan(REWRITE, tokens, f"no change log in the lake for {', '.join(unknown)}")
    if not applied:
        return ChangePlan(REWRITE, tokens, "the destination holds no sync state for this study")
    if dict(applied) == tokens:
        return ChangePlan(SKIP, tokens, "already holds the lake's state")
    moved = sorted(e for e in tokens if applied.get(e) != tokens[e])
    if moved != [keyed]:
        return ChangePlan(REWRITE, tokens, f"changed since the last write: {', '.join(moved)}")
    manifest = slices[keyed].manifest
    keys = manifest.keys_since(applied.get(keyed)) if manifest else None
    if keys is None:
        return ChangePlan(REWRITE, tokens,
                          f"the {keyed} change log does not reach back to the applied state")
    return ChangePlan(APPLY, tokens, f"{len(keys)} changed {keyed}", keyed, frozenset(keys))


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
