"""Fixtures of the client tests: settings with fast backoff, and distinctive fake keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imednet_assets.client import ClientSettings
from imednet_assets_tests.client.scripted_server import ScriptedServer

API_KEY = "APIKEY-sentinel-7731"
SECURITY_KEY = "SECKEY-sentinel-4419"


def make_settings(base_url: str, **kw: object) -> ClientSettings:
    values: dict[str, object] = dict(
        concurrency=4, page_size=2, max_attempts=4, backoff_base_s=0.01, backoff_max_s=2.0,
        timeout_s=5.0,
    )
    values.update(kw)
    return ClientSettings(base_url, API_KEY, SECURITY_KEY, **values)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv
