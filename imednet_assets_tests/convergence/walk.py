"""The convergence walk: a seeded random walk of upstream changes (modify, add, delete, purge,
delete subjects, new variables, ties in one second), each step followed by an incremental run of
the changed study, after which every destination must equal a full refresh from scratch of the
same API state, compared whole (per study; bookkeeping such as sync state left out).

Here: the destinations as the walk sees them (`Target`), the walk itself and its changes. The
tests beside this module run it over the destinations, split in two so both test workers walk."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import snowflake.connector
import sqlalchemy as sa

from imednet_assets.compare import (
    bundles_dump,
    duckdb_dump,
    lake_dump,
    sorted_rows,
    sql_dump,
    without_other_columns,
)
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.sinks.bundles.assets import bundle_assets
from imednet_assets.defs.sinks.bundles.definitions import bundle_resources
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets.defs.sinks.graph.assets import GRAPH_IO_MANAGER_KEY, build_graph_asset
from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets.defs.sinks.mongodb.assets import mongodb_assets
from imednet_assets.defs.sinks.mongodb.definitions import mongodb_resources
from imednet_assets.defs.sinks.snowflake import sql as snowflake_sql
from imednet_assets.defs.sinks.snowflake.assets import snowflake_assets
from imednet_assets.defs.sinks.snowflake.definitions import snowflake_resources
from imednet_assets.defs.sinks.snowflake.resources import (
    SnowflakeConnection,
    SnowflakeLoadSettings,
)
from imednet_assets.defs.sinks.sql.assets import sql_assets
from imednet_assets.defs.sinks.sql.definitions import sql_resources
from imednet_assets.demo import QUIET_CONSOLE
from imednet_assets.local_servers.falkordb import FalkorServer
from imednet_assets.local_servers.mongodb import NxServer
from imednet_assets.local_servers.snowflake import LocalSnowflake
from imednet_assets.simulator import SimulatorServer
from imednet_assets_tests.defs.ingest.conftest import imednet_resource
from imednet_assets_tests.defs.sinks.graph.conftest import snapshot as graph_snapshot

STEPS = 30
SEED = 20261203


@dataclass
class Target:
    """One destination as the walk sees it: its assets, its resources in a namespace, and a
    dump of one study's content there."""

    name: str
    assets: list[dg.AssetsDefinition]
    resources: Callable[[Path], dict[str, Any]]
    dump: Callable[[Path, str], Any]


def _lake_dump(ns: Path, study: str) -> dict[str, list[str]]:
    return lake_dump(LakeIOManager(root=str(ns / "lake")), study)


FILE_TARGETS = [
    Target("lake", ingest_assets, lambda ns: {"lake_io_manager": LakeIOManager(
        root=str(ns / "lake"))}, _lake_dump),
    Target("duckdb", duckdb_assets, lambda ns: duckdb_resources(str(ns / "imednet.duckdb")),
           lambda ns, study: duckdb_dump(ns / "imednet.duckdb", study)),
    # the CSV bundle stands for the three (they are rebuilt from the same tables)
    Target("bundles", bundle_assets[:1], lambda ns: bundle_resources(str(ns / "bundles")),
           lambda ns, study: bundles_dump(ns / "bundles", study)),
]


def namespace(ns: Path) -> str:
    """A stack's name on a server (database, graph, schema): `conv_<folder>`."""
    return "conv_" + re.sub(r"[^a-z0-9]", "_", ns.name.lower())


def mongodb_target(server: NxServer) -> Target:
    def dump(ns: Path, study: str) -> dict[str, list[str]]:
        with server.client() as client:
            db = client[namespace(ns)]
            return {c: sorted_rows([{k: v for k, v in d.items() if k != "exported_at"}
                                    for d in db[c].find({"study_key": study})])
                    for c in ("records", "subjects")}

    return Target("mongodb", mongodb_assets,
                  lambda ns: mongodb_resources(server.uri, namespace(ns)), dump)


def graph_target(server: FalkorServer) -> Target:
    def resources(ns: Path) -> dict[str, Any]:
        destination = GraphDestination(falkordb_url=server.url, falkordb_graph=namespace(ns))
        return {GRAPH_IO_MANAGER_KEY: GraphIOManager(destination=destination)}

    return Target("graph", [build_graph_asset("falkordb")], resources,
                  lambda ns, study: graph_snapshot(server, namespace(ns), study,
                                                   sync_state=False))


def sql_target(url: sa.URL) -> Target:
    """PostgreSQL, a schema per stack."""
    def dump(ns: Path, study: str) -> dict[str, list[str]]:
        return sql_dump(url, namespace(ns), study)

    text = url.render_as_string(hide_password=False)
    return Target("sql", sql_assets, lambda ns: sql_resources(text, namespace(ns)), dump)


def snowflake_target(server: LocalSnowflake) -> Target:
    """The fakesnow server, a schema per stack."""
    def connect(schema: str | None) -> Any:
        return snowflake.connector.connect(
            user="walk", password="walk", account="fakesnow", database="IMEDNET", schema=schema,
            network_timeout=60, **server.connection_args())

    made: set[str] = set()

    def resources(ns: Path) -> dict[str, Any]:
        schema = namespace(ns).upper()
        if schema not in made:
            with connect(None) as conn:
                conn.cursor().execute("CREATE DATABASE IF NOT EXISTS IMEDNET")
                conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS IMEDNET.{schema}")
            made.add(schema)
        connection = SnowflakeConnection(
            account="fakesnow", user="walk", password="walk", database="IMEDNET", schema=schema,
            autocommit=True, network_timeout=60,
            additional_snowflake_connection_args=server.connection_args())
        load = SnowflakeLoadSettings(stage="IMEDNET_STAGE", manifest_path=str(ns / "sf.jsonl"),
                                     retry_backoff_s=0)
        return snowflake_resources(connection, load)

    def dump(ns: Path, study: str) -> dict[str, list[str]]:
        with connect(namespace(ns).upper()) as conn:
            cur = conn.cursor(snowflake.connector.DictCursor)
            tables = [r["TABLE_NAME"] for r in cur.execute(snowflake_sql.list_tables_sql())]
            out = {}
            for table in tables:
                if table in (snowflake_sql.MANIFEST_TABLE, snowflake_sql.SYNC_STATE_TABLE):
                    continue
                rows = cur.execute(f'SELECT * FROM "{table}" WHERE "STUDY_KEY" = %s',
                                   (study,)).fetchall()
                if rows:
                    out[table] = sorted_rows(without_other_columns(rows))
            return out

    return Target("snowflake", snowflake_assets, resources, dump)


@dataclass
class Walk:
    sim: SimulatorServer
    targets: list[Target]
    base: Path
    instance: dg.DagsterInstance = field(default_factory=dg.DagsterInstance.ephemeral)

    def run(self, ns: Path, study: str, mode: str, *,
            raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        resources: dict[str, Any] = {"imednet": imednet_resource()}
        for target in self.targets:
            resources.update(target.resources(ns))
        return dg.materialize(
            [a for t in self.targets for a in t.assets], partition_key=study,
            instance=self.instance, resources=resources, tags=mode_tags(mode),
            run_config=QUIET_CONSOLE, raise_on_error=raise_on_error,
        )

    def dumps(self, ns: Path, study: str) -> dict[str, Any]:
        return {t.name: t.dump(ns, study) for t in self.targets}


def random_change(rng: random.Random) -> dict[str, Any]:
    """One upstream change: one or two kinds, small counts; sometimes in the same second."""
    kinds = ["modify", "modify", "add", "delete", "purge", "delete_subjects", "new_variables"]
    change: dict[str, Any] = {k: rng.randint(1, 3) for k in rng.sample(kinds, rng.randint(1, 2))}
    if "new_variables" in change:
        change["new_variables"] = 1
        change["modify"] = change.get("modify", 0) + 5  # some records answer it
    change["tick"] = rng.random() > 0.2
    return change


def walk_and_compare(walk: Walk, steps: int = STEPS) -> list[str]:
    """The walk; returns what happened at each step, for the failure message."""
    studies = sorted(walk.sim.stats())
    walk.instance.add_dynamic_partitions("study", studies)
    kept = walk.base / "incremental"
    for study in studies:
        walk.run(kept, study, FULL)
    rng = random.Random(SEED)
    history: list[str] = []
    for step in range(steps):
        study, change = rng.choice(studies), random_change(rng)
        walk.sim.advance(study_key=study, **change)
        history.append(f"step {step}: {study} {change}")
        walk.run(kept, study, INCREMENTAL)
        fresh = walk.base / f"fresh-{step}"
        walk.run(fresh, study, FULL)
        mine, theirs = walk.dumps(kept, study), walk.dumps(fresh, study)
        for target in walk.targets:
            assert mine[target.name] == theirs[target.name], (target.name, history)
    return history


