"""The code location loads without any environment and wires every part together."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from imednet_assets.defs.ingest.assets import ENTITIES
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.resources import ImednetResource

REPO = Path(__file__).resolve().parents[1]
DAGSTER = Path(sys.executable).parent / "dagster"


def clean_env(tmp_path: Path) -> dict[str, str]:
    # no API, no Dagster home and no destination settings from the developer's shell
    prefixes = ("IMEDNET", "DAGSTER", "MONGODB", "SNOWFLAKE", "NEO4J", "FALKORDB")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["DAGSTER_HOME"] = str(tmp_path)
    return env


def test_definitions_validate_without_env(tmp_path):
    proc = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-m", "imednet_assets.definitions"],
        cwd=REPO, env=clean_env(tmp_path), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_workspace_yaml_loads_the_module(tmp_path):
    proc = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=clean_env(tmp_path), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dagster_yaml_is_a_valid_instance_config(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        settings = instance.get_concurrency_config()
        assert settings.pool_config.default_pool_limit == 1
        assert instance.telemetry_enabled is False
    finally:
        instance.dispose()


def test_wiring():
    from imednet_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    ingest = {dg.AssetKey(["imednet", e]) for e in ENTITIES}
    assert ingest <= set(graph.get_all_asset_keys())
    for key in ingest:
        node = graph.get(key)
        assert node.partitions_def == study_partitions
        assert node.group_name == "ingest"
        assert node.kinds == {"parquet"}
        assert node.tags["imednet/layer"] == "ingest"
        assert defs.resolve_assets_def(key).get_io_manager_key_for_asset_key(key) == (
            "lake_io_manager"
        )

    job = defs.resolve_job_def("imednet_all_job")
    assert job.partitions_def == study_partitions
    # one step reads every entity, one step writes each destination
    assert {n.name for n in job.nodes} >= {"imednet_ingest", "duckdb_write", "bundles_write"}
    # what a new deployment starts with: studies found and reconciled by themselves; the
    # automations that spend many API requests wait to be turned on
    automation = {
        "study_discovery_sensor": (defs.resolve_sensor_def, dg.DefaultSensorStatus.RUNNING),
        "study_change_sensor": (defs.resolve_sensor_def, dg.DefaultSensorStatus.STOPPED),
        "study_reconcile_schedule": (defs.resolve_schedule_def,
                                     dg.DefaultScheduleStatus.RUNNING),
        "study_full_refresh_schedule": (defs.resolve_schedule_def,
                                        dg.DefaultScheduleStatus.STOPPED),
        "lake_freshness_schedule": (defs.resolve_schedule_def, dg.DefaultScheduleStatus.RUNNING),
    }
    for name, (resolve, status) in automation.items():
        definition = resolve(name)
        assert definition.job_name in ("imednet_all_job", "lake_freshness_job"), name
        assert definition.default_status == status, name
        assert "Costs" in (definition.description or ""), name

    imednet = defs.resources["imednet"]
    assert isinstance(imednet, ImednetResource)
    # the keys stay environment references until a run resolves them
    assert imednet.api_key == dg.EnvVar("IMEDNET_API_KEY")
    assert imednet.security_key == dg.EnvVar("IMEDNET_SECURITY_KEY")
    assert imednet.base_url == dg.EnvVar("IMEDNET_BASE_URL")
    assert isinstance(defs.resources["lake_io_manager"], LakeIOManager)


E2E_SCRIPT = """
import json, os
import dagster as dg
from imednet_assets.simulator import SimulatorConfig, SimulatorServer

with SimulatorServer(SimulatorConfig(seed=3, studies=2, subjects=3)) as sim:
    os.environ.update(IMEDNET_BASE_URL=sim.base_url, IMEDNET_API_KEY="k1",
                      IMEDNET_SECURITY_KEY="k2")
    from imednet_assets.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    stats = sim.stats()
    instance.add_dynamic_partitions("study", sorted(stats))
    job = defs.resolve_job_def("imednet_all_job")
    ok = {s: job.execute_in_process(partition_key=s, instance=instance).success for s in stats}
    print(json.dumps({"ok": ok, "records": {s: v["records"] for s, v in stats.items()}}))
"""


def test_all_job_runs_each_study_end_to_end(tmp_path):
    """The code location as deployed: env-configured resources, lake then DuckDB, per study."""
    env = clean_env(tmp_path)
    env["IMEDNET_ASSETS_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run([sys.executable, "-c", E2E_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"] == {s: True for s in out["records"]}
    lake = tmp_path / "data" / "lake"
    for study, count in out["records"].items():
        files = sorted((lake / "records" / f"study_key={study}").rglob("*.parquet"))
        assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == count
    with duckdb.connect(str(tmp_path / "data" / "imednet.duckdb"), read_only=True) as con:
        studies = con.sql("SELECT study_key FROM studies ORDER BY 1").fetchall()
    assert studies == [(s,) for s in sorted(out["records"])]


CONFIGURED_SCRIPT = """
import json
import dagster as dg
from imednet_assets.definitions import configured_destinations, defs

graph = defs.resolve_asset_graph()
groups = sorted({graph.get(k).group_name for k in graph.get_all_asset_keys()})
pools = sorted({graph.get(k).pools and next(iter(graph.get(k).pools)) or ""
                for k in graph.get_all_asset_keys()})
job = defs.resolve_job_def("imednet_all_job")
print(json.dumps({"destinations": configured_destinations(), "groups": groups, "pools": pools,
                  "job_assets": len(job.asset_layer.selected_asset_keys),
                  "resources": repr(defs.resources)}))
"""

SECRETS = {
    "MONGODB_URI": "mongodb://alice:mongo-pw-71@127.0.0.1:1/",
    "SNOWFLAKE_ACCOUNT": "acme-xy12345",
    "SNOWFLAKE_USER": "loader",
    "SNOWFLAKE_PASSWORD": "snow-pw-93",
    "NEO4J_URI": "neo4j://127.0.0.1:1",
    "NEO4J_USER": "neo4j",
    "NEO4J_PASSWORD": "neo-pw-55",
    "IMEDNET_ASSETS_SQL_URL": "postgresql://bob:sql-pw-28@127.0.0.1:1/db",
}


def test_each_destination_joins_when_its_settings_are_present(tmp_path):
    env = clean_env(tmp_path)
    bare = subprocess.run([sys.executable, "-c", CONFIGURED_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert bare.returncode == 0, bare.stderr[-3000:]
    out = json.loads(bare.stdout.strip().splitlines()[-1])
    # the files under the data dir need no settings: bundles, statistical exports, ODM
    assert out["destinations"] == ["bundles", "statistical", "odm"]
    assert out["groups"] == ["bundles", "cuts", "duckdb", "ingest", "odm", "statistical"]

    env.update(SECRETS)
    full = subprocess.run([sys.executable, "-c", CONFIGURED_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert full.returncode == 0, full.stderr[-3000:]
    out = json.loads(full.stdout.strip().splitlines()[-1])
    assert out["destinations"] == ["graph", "mongodb", "snowflake", "sql", "bundles",
                                   "statistical", "odm"]
    assert out["groups"] == ["bundles", "cuts", "duckdb", "graph", "ingest", "mongodb", "odm",
                             "snowflake", "sql", "statistical"]
    # every destination writes under a pool of its own (the instance limits each to 1)
    assert {"bundles_writer", "duckdb_writer", "graph_writer", "mongodb_writer",
            "snowflake_writer", "sql_writer", "statistical_writer", "odm_writer"} <= set(
                out["pools"])
    # passwords stay environment references: not in the resources the code location holds
    for secret in ("mongo-pw-71", "snow-pw-93", "neo-pw-55", "sql-pw-28"):
        assert secret not in full.stdout + full.stderr

    validate = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-m", "imednet_assets.definitions"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_unconfigured_destinations_cost_nothing_at_import(tmp_path):
    """The code location loads in every run worker: destinations left out must not import their
    client libraries."""
    script = ("import sys, imednet_assets.definitions\n"
              "heavy = ('pymongo', 'snowflake.connector', 'sqlalchemy', 'neo4j', 'falkordb')\n"
              "print([m for m in heavy if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
