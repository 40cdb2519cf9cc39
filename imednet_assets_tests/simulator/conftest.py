"""Fixtures: a real simulator on 127.0.0.1 and an httpx client with dummy keys."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from imednet_assets.simulator import SimulatorConfig, SimulatorServer

KEYS = {"x-api-key": "sim-key", "x-imn-security-key": "sim-secret"}
STUDY = "CARDIO-01"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=6)) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, headers=KEYS, timeout=30) as c:
        yield c


def fetch_all(client: httpx.Client, path: str, **params: object) -> list[dict]:
    """Every row of a list endpoint, page by page (size 500)."""
    rows: list[dict] = []
    page = 0
    while True:
        body = client.get(path, params={**params, "page": page, "size": 500}).json()
        rows += body["data"]
        page += 1
        if page >= body["pagination"]["totalPages"]:
            return rows
