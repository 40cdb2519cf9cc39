"""A small simulated study ingested into a real lake folder, and the cut asset run as Dagster
runs it (config `{name}`, one study partition)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from imednet_assets.defs.cuts.assets import DATA_CUT_OP, DATA_CUTS_KEY, DataCuts, data_cut_job
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.demo import QUIET_CONSOLE
from imednet_assets.simulator import SimulatorConfig, SimulatorServer
from imednet_assets_tests.defs.ingest.conftest import API_KEY, SECURITY_KEY, imednet_resource
from imednet_assets_tests.defs.lake.conftest import s3_lake, s3_server  # noqa: F401 (fixtures)
from imednet_assets_tests.defs.lake.lakes import S3Lake


class Lab:
    """A simulator, a lake, a cuts folder and one Dagster instance."""

    def __init__(self, sim: SimulatorServer, tmp_path: Path,
                 lake: LakeIOManager | None = None) -> None:
        self.sim = sim
        self.base = tmp_path
        self.lake = lake or LakeIOManager(root=str(tmp_path / "lake"))
        self.cuts = tmp_path / "cuts"
        self.instance = dg.DagsterInstance.ephemeral()
        self.study = sorted(sim.stats())[0]
        self.instance.add_dynamic_partitions("study", [self.study])

    def ingest(self) -> None:
        """A full read of the study into the lake."""
        dg.materialize(ingest_assets, partition_key=self.study, instance=self.instance,
                       resources={"imednet": imednet_resource(), "lake_io_manager": self.lake},
                       run_config=QUIET_CONSOLE)

    def cut(self, name: str, *, raise_on_error: bool = True,
            tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
        """`data_cut_job` for the study with config `{name}` (it records `imednet/data_cut`)."""
        config: dict[str, Any] = {"ops": {DATA_CUT_OP: {"config": {"name": name}}}}
        return data_cut_job.execute_in_process(
            partition_key=self.study, instance=self.instance, tags=tags,
            raise_on_error=raise_on_error, run_config={**config, **QUIET_CONSOLE},
            resources={"lake_io_manager": self.lake,
                       DATA_CUTS_KEY: DataCuts(root=str(self.cuts))})


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    """One small study, its keys in the environment."""
    config = SimulatorConfig(seed=7, studies=1, subjects=3, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    with SimulatorServer(config) as server:
        monkeypatch.setenv("IMEDNET_BASE_URL", server.base_url)
        monkeypatch.setenv("IMEDNET_API_KEY", API_KEY)
        monkeypatch.setenv("IMEDNET_SECURITY_KEY", SECURITY_KEY)
        yield server


@pytest.fixture
def lab(sim: SimulatorServer, tmp_path: Path) -> Lab:
    """The study ingested into a local lake."""
    lab = Lab(sim, tmp_path)
    lab.ingest()
    return lab


@pytest.fixture
def s3_lab(sim: SimulatorServer, tmp_path: Path, request: pytest.FixtureRequest) -> Lab:
    """The study ingested into a lake on S3 (moto on loopback; the lake tests' fixture)."""
    bucket: S3Lake = request.getfixturevalue("s3_lake")
    lab = Lab(sim, tmp_path, bucket.io())
    lab.ingest()
    return lab


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}
