"""Wiring: the graph sink is defined only when configured, and secrets never show."""

import dagster as dg

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.graph import definitions
from imednet_assets.defs.sinks.graph.model import ENTITIES
from imednet_assets.defs.sinks.graph.resources import GraphDestination

ENV = ("NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE", "FALKORDB_URL",
       "FALKORDB_GRAPH")


def _defs() -> dg.Definitions:
    """The graph defs as the top level merges them (the lake IO manager comes from there)."""
    upstream = [dg.AssetSpec(["imednet", e], partitions_def=study_partitions) for e in ENTITIES]
    lake = dg.Definitions(assets=upstream,
                          resources={"lake_io_manager": LakeIOManager(root="lake")})
    return dg.Definitions.merge(definitions.build_defs(), lake)


def _clear(monkeypatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_not_configured_without_settings(monkeypatch) -> None:
    _clear(monkeypatch)
    assert not definitions.is_configured()


def test_falkordb_defs(monkeypatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("FALKORDB_URL", "redis://:pw-8c1e@127.0.0.1:6390")
    assert definitions.is_configured()
    defs = _defs()
    asset = defs.resolve_assets_def(dg.AssetKey(["graph", "study_graph"]))
    assert asset.partitions_def.name == "study"
    assert asset.group_names_by_key[asset.key] == "graph"
    assert asset.specs_by_key[asset.key].kinds == {"falkordb"}
    node = asset.node_def
    assert node.pool == "graph_writer"
    destination = GraphDestination(falkordb_url="redis://:pw-8c1e@127.0.0.1:6390")
    transport = destination.transport()
    assert transport.destination == "FalkorDB at redis://***@127.0.0.1:6390 (graph imednet)"
    assert "pw-8c1e" not in repr(destination)


def test_neo4j_wins_and_password_stays_secret(monkeypatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv("NEO4J_URI", "bolt://db.example:7687")
    monkeypatch.setenv("NEO4J_USER", "neo4j")
    monkeypatch.setenv("NEO4J_PASSWORD", "neo-pw-51aa")
    monkeypatch.setenv("FALKORDB_URL", "redis://127.0.0.1:6390")
    defs = _defs()
    asset = defs.resolve_assets_def(dg.AssetKey(["graph", "study_graph"]))
    assert asset.specs_by_key[asset.key].kinds == {"neo4j"}
    destination = GraphDestination(neo4j_uri="bolt://db.example:7687", neo4j_user="neo4j",
                                   neo4j_password="neo-pw-51aa", neo4j_database="clinical")
    assert "neo-pw-51aa" not in repr(destination)
    assert destination.transport().destination == "Neo4j at bolt://db.example:7687 (database " \
        "clinical)"
