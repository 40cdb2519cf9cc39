"""A real simulator, one study ingested into a real lake and DuckDB file by `imednet_all_job`, and
a way to run only the checks again (on a copy of the DuckDB file, so each test may tamper)."""

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from imednet_assets.definitions import imednet_all_job
from imednet_assets.defs.checks.definitions import asset_checks
from imednet_assets.defs.checks.freshness import lake_is_fresh
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets.simulator import SimulatorConfig, SimulatorServer

API_KEY = "checks-api-key-2b7e"
SECURITY_KEY = "checks-security-key-91c4"
CHECK_KEYS = {key for checks in asset_checks for key in checks.check_keys}


def check_key(asset: str, name: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)


@dataclass
class Study:
    """One ingested study: its simulator, lake, DuckDB file and Dagster instance."""

    sim: SimulatorServer
    key: str
    lake: Path
    db: Path
    instance: dg.DagsterInstance

    def job(self, db: Path | None = None) -> dg.JobDefinition:
        """`imednet_all_job` over every asset and check, bound to this study's files."""
        resources = {
            "imednet": ImednetResource(
                base_url=self.sim.base_url, api_key=API_KEY, security_key=SECURITY_KEY
            ),
            "lake_io_manager": LakeIOManager(root=str(self.lake)),
            **duckdb_resources(str(db or self.db)),
        }
        defs = dg.Definitions(
            assets=[*ingest_assets, *duckdb_assets],
            # the freshness check is defined beside the job, which leaves it out
            asset_checks=[*asset_checks, lake_is_fresh],
            jobs=[imednet_all_job],
            resources=resources,
        )
        return defs.resolve_job_def(imednet_all_job.name)

    def run_all(self) -> dg.ExecuteInProcessResult:
        return self.job().execute_in_process(partition_key=self.key, instance=self.instance)

    def run_checks(
        self, db: Path | None = None, keys: set[dg.AssetCheckKey] | None = None
    ) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
        """Only the checks (no asset is materialized), on `db` (default: the study's file)."""
        job = self.job(db).get_subset(
            asset_selection=set(), asset_check_selection=keys or CHECK_KEYS
        )
        result = job.execute_in_process(partition_key=self.key, instance=self.instance)
        assert not result.get_asset_materialization_events()
        return evaluations(result)

    def tamper(self, tmp_path: Path, statement: str) -> Path:
        """A copy of the DuckDB file with `statement` applied (`?` is the study key)."""
        copy = tmp_path / "tampered.duckdb"
        shutil.copyfile(self.db, copy)
        conn = duckdb.connect(str(copy))
        try:
            conn.execute(statement, [self.key] * statement.count("?"))
        finally:
            conn.close()
        return copy


def evaluations(
    result: dg.ExecuteInProcessResult,
) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    return {e.asset_check_key: e for e in result.get_asset_check_evaluations()}


def ingest(tmp: Path, sim: SimulatorServer) -> tuple[Study, dg.ExecuteInProcessResult]:
    """`imednet_all_job` for the simulator's first study: ingest, DuckDB and every check."""
    key = sorted(sim.stats())[0]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [key])
    study = Study(sim, key, tmp / "lake", tmp / "imednet.duckdb", instance)
    return study, study.run_all()


def simulator(seed: int) -> SimulatorServer:
    config = SimulatorConfig(seed=seed, studies=1, subjects=5, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    return SimulatorServer(config)


@pytest.fixture(scope="module")
def clean(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Study, dg.ExecuteInProcessResult]]:
    """A study ingested once for the module; tests only read it or tamper with a copy."""
    with simulator(seed=11) as sim:
        yield ingest(tmp_path_factory.mktemp("clean"), sim)
