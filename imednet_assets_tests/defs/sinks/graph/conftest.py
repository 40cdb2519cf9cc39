"""Real FalkorDB servers for the graph sink tests, a whole-graph snapshot, and a Dagster run of the
graph asset over a small lake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.sinks.graph.assets import build_graph_asset
from imednet_assets.defs.sinks.graph.cypher import SYNC_STATE
from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
from imednet_assets.defs.sinks.graph.properties import LOAD_ID
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets.local_servers import free_port
from imednet_assets.local_servers.falkordb import FalkorServer, free_bolt_port
from imednet_assets_tests.defs.ingest.conftest import imednet_env, sim  # noqa: F401 - fixtures
from imednet_assets_tests.defs.sinks.duckdb.conftest import variable, write_lake
from imednet_assets_tests.defs.sinks.runs import materialize_study

__all__ = ["FalkorServer", "free_bolt_port", "free_port"]


@pytest.fixture(scope="session")
def falkordb_server() -> Iterator[FalkorServer]:
    """One shared server; every test uses its own graph name."""
    server = FalkorServer().start()
    yield server
    server.stop()


@pytest.fixture
def graph_name(request: pytest.FixtureRequest) -> str:
    return f"t_{request.node.name}"[:100]


def _node_key(props: dict[str, Any]) -> str:
    return orjson.dumps({k: v for k, v in props.items() if k != LOAD_ID},
                        option=orjson.OPT_SORT_KEYS).decode()


def snapshot(server: FalkorServer, graph: str, study: str | None = None, *,
             sync_state: bool = True) -> dict[str, list]:
    """The whole graph (or the part reachable from one study's nodes): every node as labels +
    properties and every relationship as type + both endpoints' properties, sorted, with
    `load_id` left out (the only thing that differs between a replay and a clean run).
    Duplicates stay visible: lists, not sets. `sync_state=False` leaves the SyncState nodes
    out (they name the lake's lineage, which differs between two lakes)."""
    g = server.client().select_graph(graph)
    conditions = (["n.study_key = $study"] if study else []) + (
        [] if sync_state else [f"NOT n:{SYNC_STATE}"])
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    nodes = g.query(f"MATCH (n) {where} RETURN labels(n), properties(n)",
                    {"study": study}).result_set
    rels = g.query(f"MATCH (n)-[r]->(m) {where} RETURN type(r), properties(n), properties(m), "
                   "properties(r)", {"study": study}).result_set
    return {
        "nodes": sorted(f"{sorted(labels)} {_node_key(p)}" for labels, p in nodes),
        "rels": sorted(f"{t} {_node_key(a)} -> {_node_key(b)} {_node_key(r)}"
                       for t, a, b, r in rels),
    }


def counts(server: FalkorServer, graph: str, study: str) -> dict[str, int]:
    g = server.client().select_graph(graph)
    rows = g.query("MATCH (n {study_key: $s}) RETURN labels(n)[0], count(n)", {"s": study})
    return dict(rows.result_set)


class GraphSink:
    """A lake folder, a Dagster instance and a way to run the graph asset against a server."""

    def __init__(self, lake: Path, destination: GraphDestination) -> None:
        self.lake = lake
        self.destination = destination
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, study: str, *, raise_on_error: bool = True,
            destination: GraphDestination | None = None) -> dg.ExecuteInProcessResult:
        return materialize_study(
            self.instance, study, [build_graph_asset("falkordb")],
            {"lake_io_manager": LakeIOManager(root=str(self.lake)),
             "graph_io_manager": GraphIOManager(destination=destination or self.destination)},
            raise_on_error=raise_on_error)

    def metadata(self, result: dg.ExecuteInProcessResult) -> dict[str, Any]:
        [event] = result.get_asset_materialization_events()
        meta = event.materialization.metadata
        return {k: getattr(v, "value", v) for k, v in meta.items()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The description of the graph step's failure (what the UI shows)."""
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.user_failure_data.description or ""


def small_study(root: Path, study: str, records: list[dict], *, subjects: list[dict] | None = None,
                visits: list[dict] | None = None, variables: list[dict] | None = None,
                forms: tuple[str, ...] = ("VS", "AE")) -> None:
    """A whole small study in the lake (two sites, three subjects with a visit each by default)."""
    write_lake(root, "studies", study, [{"study_id": 1, "study_name": f"Study {study}"}])
    write_lake(root, "sites", study, [{"site_id": 101, "site_name": "Rochester"},
                                      {"site_id": 102, "site_name": "Chicago"}])
    write_lake(root, "forms", study, [{"form_id": i, "form_key": f, "form_name": f"Form {f}"}
                                      for i, f in enumerate(forms)])
    write_lake(root, "variables", study, variables if variables is not None else [
        variable(1, "VS", "weight", "NUMBER"), variable(2, "VS", "vsdt", "DATE"),
        variable(3, "AE", "aeterm", "TEXT"), variable(4, "AE", "aeongo", "CHECKBOX")])
    write_lake(root, "subjects", study, subjects if subjects is not None else [
        {"subject_id": i, "subject_key": f"S-{i}", "site_id": 101 + i % 2, "deleted": False}
        for i in range(3)])
    write_lake(root, "visits", study, visits if visits is not None else [
        {"visit_id": 10 + i, "subject_key": f"S-{i}", "interval_name": "Week 4",
         "deleted": False} for i in range(3)])
    write_lake(root, "records", study, records)


def rec(record_id: int, form_key: str, data: dict[str, str | None], *, subject: int = 0,
        visit: int | None = None, parent: int = 0, deleted: bool = False) -> dict:
    """A record of subject S-<subject> (in its visit unless `visit=0`)."""
    return {"record_id": record_id, "form_key": form_key, "subject_key": f"S-{subject}",
            "visit_id": 10 + subject if visit is None else visit, "site_id": 101,
            "parent_record_id": parent, "record_status": "Record Complete", "deleted": deleted,
            "date_modified": dt.datetime(2024, 4, 10, 7, 12, 48),
            "record_data": list(data.items())}
