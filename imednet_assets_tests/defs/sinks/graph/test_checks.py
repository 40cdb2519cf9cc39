"""`graph/study_graph` `every_record_once` on a real FalkorDB server: passes after a
materialization with exact counts (live records only), fails with exact counts and ids after a
Record node is deleted, ignores other studies."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.sinks.graph.assets import build_graph_asset
from imednet_assets.defs.sinks.graph.checks import graph_every_record_once
from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets_tests.defs.sinks.check_runs import meta, run_check
from imednet_assets_tests.defs.sinks.graph.conftest import FalkorServer, rec, small_study

OTHER = "O'Brien; MATCH (n) DETACH DELETE n //"  # another study, with a hostile key
RECORDS = [
    rec(1, "VS", {"weight": "80", "odd name $.x": "\"quoted\" 'é'"}),
    rec(2, "VS", {"weight": "81"}, subject=1),
    rec(3, "AE", {"aeterm": "Headache"}, subject=2, deleted=True),  # left out of the graph
    rec(4, "AE", {"aeterm": "x" * 100_000}, subject=2, parent=1),
]


class Graph:
    """A lake with studies A and OTHER, a graph on the shared server, a Dagster instance."""

    def __init__(self, tmp_path: Path, server: FalkorServer, name: str) -> None:
        self.lake = tmp_path / "lake"
        self.server, self.name = server, name
        self.destination = GraphDestination(falkordb_url=server.url, falkordb_graph=name,
                                            retry_backoff_s=0.0)
        self.instance = dg.DagsterInstance.ephemeral()

    def check(self, study: str, *, materialize: bool = False):
        resources = {"lake_io_manager": LakeIOManager(root=str(self.lake)),
                     "graph": self.destination,
                     "graph_io_manager": GraphIOManager(destination=self.destination)}
        return run_check(self.instance, study, graph_every_record_once, resources,
                         [build_graph_asset("falkordb")], materialize=materialize)

    def query(self, text: str, params: dict) -> list:
        return self.server.client().select_graph(self.name).query(text, params).result_set


@pytest.fixture
def graph(tmp_path: Path, falkordb_server: FalkorServer, graph_name: str) -> Graph:
    g = Graph(tmp_path, falkordb_server, graph_name)
    small_study(g.lake, "A", RECORDS)
    small_study(g.lake, OTHER, RECORDS)
    return g


def test_passes_after_materialization_then_fails_with_exact_counts(graph: Graph) -> None:
    graph.check(OTHER, materialize=True)  # the same record ids in another study

    evaluation = graph.check("A", materialize=True)

    assert evaluation.passed
    assert evaluation.description == "study A: 3 live lake records, each one Record node"
    assert meta(evaluation) == {
        "study": "A", "label": "Record",
        "destination": f"FalkorDB at {graph.server.url} (graph {graph.name})",
        "lake_live_rows": 3, "lake_deleted_rows": 1, "graph_record_nodes": 3,
        "missing_sample": [], "unexpected_sample": [],
    }

    deleted = graph.query("MATCH (n:Record {study_key: $s, record_id: 4}) DETACH DELETE n "
                          "RETURN count(*)", {"s": "A"})
    assert deleted == [[1]]
    evaluation = graph.check("A")

    assert not evaluation.passed
    assert evaluation.description == (
        "study A: the graph holds 2 Record nodes, the lake 3 live records")
    found = meta(evaluation)
    assert (found["lake_live_rows"], found["graph_record_nodes"]) == (3, 2)
    assert (found["missing_sample"], found["unexpected_sample"]) == ([4], [])
    assert graph.check(OTHER).passed  # the other study is untouched


def test_other_studies_nodes_do_not_count(graph: Graph) -> None:
    graph.check("A", materialize=True)
    graph.check(OTHER, materialize=True)
    graph.query("MATCH (n:Record {study_key: $s}) DETACH DELETE n", {"s": OTHER})

    assert graph.check("A").passed
    evaluation = graph.check(OTHER)
    assert evaluation.description == (
        f"study {OTHER}: the graph holds 0 Record nodes, the lake 3 live records")
    assert meta(evaluation)["missing_sample"] == [1, 2, 4]
