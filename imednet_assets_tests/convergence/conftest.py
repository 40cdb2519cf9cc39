"""The walk's simulator: two small studies, its keys in the environment."""

from __future__ import annotations

import pytest

from imednet_assets.simulator import SimulatorConfig, SimulatorServer
from imednet_assets_tests.defs.ingest.conftest import API_KEY, SECURITY_KEY


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch):
    config = SimulatorConfig(seed=31, studies=2, subjects=2, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    with SimulatorServer(config) as server:
        monkeypatch.setenv("IMEDNET_BASE_URL", server.base_url)
        monkeypatch.setenv("IMEDNET_API_KEY", API_KEY)
        monkeypatch.setenv("IMEDNET_SECURITY_KEY", SECURITY_KEY)
        yield server
