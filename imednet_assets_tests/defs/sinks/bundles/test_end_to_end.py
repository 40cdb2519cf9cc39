"""Simulator (hostile data) -> ingest -> lake -> bundles, two studies: every cell of every
bundle equals the lake; replaying one study rewrites nothing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.bundles.assets import bundle_assets
from imednet_assets.defs.sinks.bundles.definitions import bundle_resources
from imednet_assets.simulator.generator import study_keys
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.defs.sinks.bundles.checks import check_all
from imednet_assets_tests.defs.sinks.bundles.conftest import Bundles, read_json_zip, read_xlsx


def test_simulator_to_bundles_and_replay(tmp_path: Path) -> None:
    bundles = Bundles(tmp_path)
    studies = [key for key, _ in study_keys(2)]
    bundles.instance.add_dynamic_partitions("study", studies)
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=10, hostile=True)) as server:
        resources = {
            "imednet": ImednetResource(base_url=server.base_url, api_key="k", security_key="s"),
            "lake_io_manager": LakeIOManager(root=str(bundles.lake)),
            **bundle_resources(str(bundles.root), "labels"),
        }
        for study in studies:
            dg.materialize([*ingest_assets, *bundle_assets], partition_key=study,
                           instance=bundles.instance, resources=resources)
        first = bundles.files()
        # replay the bundles only (the lake is the same): identical bytes
        upstream = [dg.AssetSpec(key, partitions_def=a.partitions_def)
                    for a in ingest_assets for key in a.keys]
        dg.materialize([*upstream, *bundle_assets], partition_key=studies[0],
                       instance=bundles.instance, resources=resources)
    assert bundles.files() == first

    for study in studies:
        check_all(bundles, study)
        # the hostile generator's 100 kB values: whole in JSON, cut and listed in XLSX
        objects = read_json_zip(bundles.path(study, "json"))
        longest = max(len(v) for name, rows in objects.items() if name.startswith("form_")
                      for row in rows for v in row.values() if isinstance(v, str))
        assert longest >= 100_000
        info = read_xlsx(bundles.path(study, "xlsx"))["information"]
        assert dict((r[0], r[1]) for r in info if r[0] == "cut_cells")["cut_cells"] > 0
