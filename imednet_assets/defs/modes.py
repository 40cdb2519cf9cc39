"""Refresh modes a run asks for with its tags: a full re-read of the study, or only the changes
since the lake's watermark. Without the tag a run is a full refresh (a replay, a backfill)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

MODE_TAG = "imednet/mode"
#: Rows the change sensor counted per entity (`records=1001,queries=3`): the run starts the
#: pages they fill at once instead of learning their number from the first page.
CHANGED_ROWS_TAG = "imednet/changed_rows"
#: Which sensor or schedule asked for the run (shown in the UI's run list).
TRIGGER_TAG = "imednet/trigger"
FULL = "full"
INCREMENTAL = "incremental"
MODES = (FULL, INCREMENTAL)


def run_mode(context: dg.AssetExecutionContext) -> str:
    """The run's refresh mode; an unknown value is refused rather than guessed."""
    mode = context.run.tags.get(MODE_TAG, FULL)
    if mode not in MODES:
        raise dg.Failure(f"run tag {MODE_TAG}={mode!r} is not one of {', '.join(MODES)}")
    return mode


def mode_tags(mode: str) -> dict[str, str]:
    return {MODE_TAG: mode}


def changed_rows_tags(rows: dict[str, int]) -> dict[str, str]:
    """The tag of the changed rows a probe counted (none when it counted none)."""
    text = ",".join(f"{entity}={n}" for entity, n in sorted(rows.items()) if n > 0)
    return {CHANGED_ROWS_TAG: text} if text else {}


def changed_rows(tags: Mapping[str, str]) -> dict[str, int]:
    """The changed rows a run's tags announce per entity; a malformed item announces nothing
    (it only decides how many pages start at once)."""
    rows: dict[str, int] = {}
    for item in tags.get(CHANGED_ROWS_TAG, "").split(","):
        entity, _, n = item.partition("=")
        if n.isascii() and n.isdigit():
            rows[entity] = int(n)
    return rows
