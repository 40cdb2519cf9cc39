"""Reading an in-process run's result by asset, whichever step wrote the asset (one step writes
every asset of a destination)."""

from __future__ import annotations

from typing import Any

import dagster as dg


def materialization(result: Any, asset: str) -> dg.AssetMaterialization:
    """The first materialization of `asset` (`"duckdb/form_tables"`) in `result`; KeyError when
    the run did not materialize it."""
    key = dg.AssetKey.from_user_string(asset)
    for event in result.get_asset_materialization_events():
        found = event.step_materialization_data.materialization
        if found.asset_key == key:
            return found
    raise KeyError(f"the run did not materialize {asset}")
