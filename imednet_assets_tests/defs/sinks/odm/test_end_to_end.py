"""Simulator (hostile data) -> ingest -> lake -> ODM: both files of each study validate, the
snapshot equals the lake's live records, one AuditRecord per revision; a replay rewrites
nothing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.odm.assets import odm_assets
from imednet_assets.defs.sinks.odm.definitions import odm_resources
from imednet_assets.simulator.generator import study_keys
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.defs.sinks.odm.conftest import Odm, check_odm


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_simulator_to_odm_and_replay(odm: Odm) -> None:
    studies = [key for key, _ in study_keys(2)]
    odm.instance.add_dynamic_partitions("study", studies)
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=6, hostile=True)) as server:
        resources = {
            "imednet": ImednetResource(base_url=server.base_url, api_key="k", security_key="s"),
            "lake_io_manager": LakeIOManager(root=str(odm.lake)),
            **odm_resources(str(odm.root)),
        }
        for study in studies:
            dg.materialize([*ingest_assets, *odm_assets], partition_key=study,
                           instance=odm.instance, resources=resources)
        first = _files(odm.root)
        upstream = [dg.AssetSpec(key, partitions_def=a.partitions_def)
                    for a in ingest_assets for key in a.keys]
        dg.materialize([*upstream, *odm_assets], partition_key=studies[0],
                       instance=odm.instance, resources=resources)
    assert _files(odm.root) == first
    for study in studies:
        check_odm(odm.lake, study, odm.path(study, "snapshot"), odm.path(study, "transactional"))
