"""Simulator (hostile data) -> ingest -> lake -> FalkorDB; changes in the simulator land exactly."""

from __future__ import annotations

import dagster as dg

from imednet_assets.client.settings import ClientSettings
from imednet_assets.client.sync import fetch_all_sync
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.graph.assets import build_graph_asset
from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets.simulator.generator import study_keys
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.defs.sinks.graph.conftest import GraphSink, snapshot


def test_simulator_changes_land_in_the_graph(tmp_path, falkordb_server, graph_name) -> None:
    lake = tmp_path / "lake"
    studies = [key for key, _ in study_keys(2)]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", studies)
    destination = GraphDestination(falkordb_url=falkordb_server.url, falkordb_graph=graph_name,
                                   batch_size=100)
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=4, hostile=True)) as server:
        resources = {
            "imednet": ImednetResource(base_url=server.base_url, api_key="k", security_key="s"),
            "lake_io_manager": LakeIOManager(root=str(lake)),
            "graph_io_manager": GraphIOManager(destination=destination),
        }

        def run(study: str) -> None:
            dg.materialize([*ingest_assets, build_graph_asset("falkordb")], partition_key=study,
                           instance=instance, resources=resources)

        for study in studies:
            run(study)
        other = snapshot(falkordb_server, graph_name, studies[1])
        out = server.advance(study_key=studies[0], modify=6, add=4, delete=3, purge=3,
                             delete_subjects=1)
        run(studies[0])
        settings = ClientSettings(base_url=server.base_url, api_key="k", security_key="s")
        served = fetch_all_sync(settings, "records", studies[0]).to_pylist()

    assert snapshot(falkordb_server, graph_name, studies[1]) == other
    clean = GraphSink(lake, GraphDestination(falkordb_url=falkordb_server.url,
                                             falkordb_graph=f"{graph_name}_clean"))
    for study in studies:
        clean.run(study)
    assert snapshot(falkordb_server, graph_name) == snapshot(falkordb_server,
                                                             f"{graph_name}_clean")
    g = falkordb_server.client().select_graph(graph_name)
    landed = g.query("MATCH (r:Record {study_key: $s}) RETURN r.record_id, r.date_modified",
                     {"s": studies[0]}).result_set
    live = {r["record_id"]: r["date_modified"].isoformat() for r in served if not r["deleted"]}
    assert dict(landed) == live  # modified, added in; deleted and purged out
    assert not set(out["purged"]) & set(live) and set(out["added"]) <= set(live)
    assert out["deleted_subjects"][0] not in {
        k for [k] in g.query("MATCH (s:Subject {study_key: $s}) RETURN s.subject_key",
                             {"s": studies[0]}).result_set}
