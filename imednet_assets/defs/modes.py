"""Refresh modes a run asks for with its tags: a full re-read of the study, or only the changes
since the lake's watermark. Without the tag a run is a full refresh (a replay, a backfill)."""

from __future__ import annotations

import dagster as dg

MODE_TAG = "imednet/mode"
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
