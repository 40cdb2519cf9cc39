"""Statistical export definitions: always on (files need no server), merged by the top level."""

from __future__ import annotations

import dagster as dg

from imednet_assets.defs.sinks.statistical.assets import (
    SINK,
    STATISTICAL_IO_MANAGER_KEY,
    statistical_assets,
)
from imednet_assets.defs.sinks.statistical.io_manager import StatisticalIOManager


def is_configured() -> bool:
    """Statistical exports are always on: they land under the data directory."""
    return True


def statistical_resources(root: str | None = None) -> dict[str, object]:
    """`statistical_io_manager` writing under `root` (default: `<data dir>/bundles`)."""
    return {STATISTICAL_IO_MANAGER_KEY: StatisticalIOManager(root=root)}


def build_defs() -> dg.Definitions:
    """The three export assets (`statistical/xpt`, `statistical/sav`, `statistical/dta`) and
    their IO manager; the lake IO manager comes from the top level."""
    return SINK.definitions(statistical_assets, statistical_resources())
