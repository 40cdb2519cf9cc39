"""File bundle definitions: always on (files need no server), merged by the top level."""

from __future__ import annotations

import os

import dagster as dg

from imednet_assets.defs.sinks.bundles.assets import BUNDLES_IO_MANAGER_KEY, SINK, bundle_assets
from imednet_assets.defs.sinks.bundles.cells import HEADER_MODES, HeaderMode
from imednet_assets.defs.sinks.bundles.io_manager import BundleIOManager

#: Column headers of the form tables: `names` (default) or `labels`.
HEADERS_ENV = "IMEDNET_ASSETS_BUNDLE_HEADERS"


def is_configured() -> bool:
    """Bundles are always on: they land under the data directory."""
    return True


def headers_from_env() -> HeaderMode:
    value = (os.environ.get(HEADERS_ENV) or "names").strip().lower()
    if value not in HEADER_MODES:
        raise ValueError(f"{HEADERS_ENV} must be one of {', '.join(HEADER_MODES)}, not {value!r}")
    return value  # type: ignore[return-value]


def bundle_resources(
    root: str | None = None, headers: HeaderMode | None = None
) -> dict[str, object]:
    """`bundles_io_manager` writing under `root` (default: `<data dir>/bundles`)."""
    return {
        BUNDLES_IO_MANAGER_KEY: BundleIOManager(root=root, headers=headers or headers_from_env())
    }


def build_defs() -> dg.Definitions:
    """The three bundle assets (`bundles/csv`, `bundles/xlsx`, `bundles/json`) and their IO
    manager; the lake IO manager comes from the top level."""
    return SINK.definitions(bundle_assets, bundle_resources())
