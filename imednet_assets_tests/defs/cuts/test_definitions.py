"""The cut asset in the code location: there, fed by every lake entity, and never part of the
all-in-one study job (a cut is made on demand, under a name)."""

from __future__ import annotations

import dagster as dg

from imednet_assets.definitions import ALL_JOB_NAME, defs
from imednet_assets.defs.cuts.assets import DATA_CUT_KEY, DATA_CUTS_KEY
from imednet_assets.defs.ingest.assets import ENTITIES


def test_data_cut_is_defined_downstream_of_the_lake_and_out_of_the_study_job() -> None:
    graph = defs.resolve_asset_graph()
    assert set(graph.get(DATA_CUT_KEY).parent_keys) == {
        dg.AssetKey(["imednet", e]) for e in ENTITIES}
    assert DATA_CUTS_KEY in defs.resources
    job = defs.resolve_job_def(ALL_JOB_NAME)
    assert DATA_CUT_KEY not in job.asset_layer.selected_asset_keys
    assert dg.AssetKey(["imednet", "records"]) in job.asset_layer.selected_asset_keys
