"""ODM definitions: always on (files need no server), merged by the top level."""

from __future__ import annotations

import dagster as dg

from imednet_assets.defs.sinks.odm.assets import ODM_IO_MANAGER_KEY, SINK, odm_assets
from imednet_assets.defs.sinks.odm.io_manager import OdmIOManager


def is_configured() -> bool:
    """ODM files are always on: they land under the data directory."""
    return True


def odm_resources(root: str | None = None) -> dict[str, object]:
    """`odm_io_manager` writing under `root` (default: `<data dir>/bundles`)."""
    return {ODM_IO_MANAGER_KEY: OdmIOManager(root=root)}


def build_defs() -> dg.Definitions:
    """The two ODM assets (`odm/snapshot`, `odm/transactional`), the snapshot's reconciliation
    check and their IO manager; the lake IO manager comes from the top level."""
    from imednet_assets.defs.sinks.odm.checks import RECORD_CHECK

    return SINK.definitions(odm_assets, odm_resources(), RECORD_CHECK)
