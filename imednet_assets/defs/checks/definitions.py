"""Every asset check, per study partition; merged into the top-level Definitions, so
`imednet_all_job` (selection `AssetSelection.all()`) runs them after the assets they check."""

import dagster as dg

from imednet_assets.defs.checks.integrity import integrity_checks
from imednet_assets.defs.checks.reconciliation import reconciliation_checks

asset_checks: list[dg.AssetChecksDefinition] = [*reconciliation_checks, *integrity_checks]

defs = dg.Definitions(asset_checks=asset_checks)
