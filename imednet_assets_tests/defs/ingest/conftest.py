"""Fixtures: a real simulator with its own keys, the keys in the environment (read through
`dg.EnvVar` as in production), and a lake in a temp folder."""

from collections.abc import Iterator

import dagster as dg
import pytest

from imednet_assets.defs.resources import ImednetResource
from imednet_assets.simulator import SimulatorConfig, SimulatorServer

API_KEY = "sim-api-key-7f3a9c"
SECURITY_KEY = "sim-security-key-d41e0b"


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    config = SimulatorConfig(seed=11, studies=2, subjects=5, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture
def imednet_env(sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMEDNET_BASE_URL", sim.base_url)
    monkeypatch.setenv("IMEDNET_API_KEY", API_KEY)
    monkeypatch.setenv("IMEDNET_SECURITY_KEY", SECURITY_KEY)


def imednet_resource(**knobs: int) -> ImednetResource:
    return ImednetResource(
        base_url=dg.EnvVar("IMEDNET_BASE_URL"),
        api_key=dg.EnvVar("IMEDNET_API_KEY"),
        security_key=dg.EnvVar("IMEDNET_SECURITY_KEY"),
        **knobs,
    )
