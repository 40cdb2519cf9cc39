"""Ingest assets as a Definitions object (resources are bound in imednet_assets.definitions)."""

import dagster as dg

from imednet_assets.defs.ingest.assets import ingest_assets

defs = dg.Definitions(assets=ingest_assets)
