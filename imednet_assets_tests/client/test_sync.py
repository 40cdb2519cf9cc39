"""The synchronous façade: streaming over a bounded queue, errors, early close."""

from __future__ import annotations

import threading
import time

import pytest

from imednet_assets.client import ImednetNotFound, fetch_all_sync, iter_batches_sync
from imednet_assets_tests.client.conftest import make_settings
from imednet_assets_tests.client.scripted_server import (
    Reply,
    ScriptedServer,
    envelope,
    error_body,
)


def site_pages(total: int, delay_s: float = 0.0):
    def answer(seen):
        page = seen.page or 0
        rows = [{"studyKey": "S", "siteId": page * 2 + i} for i in range(2)]
        return Reply(json=envelope(page, total, rows), delay_s=delay_s)

    return answer


def _producers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("imednet-sites-")]


def test_streams_all_batches_in_order(server: ScriptedServer):
    server.fallback = site_pages(5)
    batches = list(iter_batches_sync(make_settings(server.base_url), "sites", "S"))
    assert [b.num_rows for b in batches] == [2] * 5
    table = fetch_all_sync(make_settings(server.base_url), "sites", "S")
    assert table.column("site_id").to_pylist() == list(range(10))
    assert table.column("study_key").to_pylist() == ["S"] * 10


def test_errors_reach_the_consumer(server: ScriptedServer):
    server.fallback = lambda seen: Reply(404, json=error_body("404", "no such study"))
    with pytest.raises(ImednetNotFound, match="^sites for study S: HTTP 404 .code 404: no such"):
        list(iter_batches_sync(make_settings(server.base_url), "sites", "S"))
    assert len(server.requests) == 1
    assert _producers() == []


def test_closing_early_stops_the_producer(server: ScriptedServer):
    server.fallback = site_pages(1000, delay_s=0.02)
    batches = iter_batches_sync(make_settings(server.base_url, concurrency=2), "sites", "S")
    assert next(batches).num_rows == 2
    batches.close()
    assert _producers() == []  # close() joined the producer thread
    seen = len(server.requests)
    time.sleep(0.2)
    assert len(server.requests) == seen
    assert seen <= 1 + 2 * 4  # page 0, a few windows at most: bounded by queue + concurrency
