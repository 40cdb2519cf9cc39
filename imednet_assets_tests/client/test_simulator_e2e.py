"""End to end against the project's simulator: paging, faults, auth, the sync façade."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest

from imednet_assets.client import (
    ImednetAuthError,
    ImednetClient,
    ImednetSourceChanged,
    fetch_all_sync,
    iter_batches_sync,
    list_studies_sync,
)
from imednet_assets.client.sync import count_sync
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.client.conftest import API_KEY, SECURITY_KEY, make_settings


@pytest.fixture(scope="module")
def sim():
    config = SimulatorConfig(subjects=12, api_key=API_KEY, security_key=SECURITY_KEY)
    with SimulatorServer(config) as server:
        yield server


def test_every_entity_matches_the_simulator_counts(sim):
    settings = make_settings(sim.base_url, page_size=100)
    studies = list_studies_sync(settings)
    stats = sim.stats()
    assert sorted(s["studyKey"] for s in studies) == sorted(stats)
    study = studies[0]["studyKey"]
    for entity in ("sites", "subjects", "intervals", "forms", "variables", "visits",
                   "record_revisions", "queries", "codings", "users"):  # fmt: skip
        table = fetch_all_sync(settings, entity, study)
        assert table.num_rows == stats[study][entity], entity
        assert count_sync(settings, entity, study) == stats[study][entity], entity
        assert table.column("extra").null_count == table.num_rows, entity
    only = fetch_all_sync(settings, "studies", study)
    assert only.column("study_key").to_pylist() == [study]


def test_records_stream_complete_unique_and_in_order(sim):
    study = "CARDIO-01"
    settings = make_settings(sim.base_url, page_size=50, concurrency=4)
    batches = list(iter_batches_sync(settings, "records", study))
    table = pa.Table.from_batches(batches)
    ids = table.column("record_id").to_pylist()
    assert len(ids) == sim.stats()[study]["records"] and len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert len(batches) == -(-len(ids) // 50)


def test_scripted_faults_are_survived(sim):
    study = "CARDIO-01"
    armed = sim.set_faults(fail_next=[{"status": 429, "retry_after": "1"}, {"status": 503},
                                      {"malformed": True}])  # fmt: skip
    assert armed["fail_next"] == 3
    settings = make_settings(sim.base_url, page_size=100)
    table = fetch_all_sync(settings, "records", study)
    assert table.num_rows == sim.stats()[study]["records"]
    assert table.column("record_id").unique().to_pylist() == table.column("record_id").to_pylist()
    assert sim.set_faults()["fail_next"] == 0  # every scripted fault was met and survived


def test_wrong_keys_are_an_auth_error(sim):
    from imednet_assets.client import ClientSettings

    settings = ClientSettings(sim.base_url, "wrong", "keys", max_attempts=2)

    async def studies():
        async with ImednetClient(settings) as client:
            return await client.list_studies()

    with pytest.raises(ImednetAuthError, match="^studies: HTTP 401"):
        asyncio.run(studies())


def test_a_listing_that_changes_while_read_is_refused(sim):
    study = "ONCO-02"
    settings = make_settings(sim.base_url, page_size=50, concurrency=1)
    total = sim.stats()[study]["records"]

    async def read_while_records_arrive() -> int:
        read = 0
        async with ImednetClient(settings) as client:
            async for rows in client.iter_pages("records", study):
                if read == 0:
                    sim.advance(study_key=study, add=3)  # offsets shift under the reader
                read += len(rows)
        return read

    with pytest.raises(ImednetSourceChanged) as caught:
        asyncio.run(read_while_records_arrive())
    assert str(caught.value) == (
        f"records for study {study}: the listing changed while it was read (totalElements "
        f"{total} on page 0, {total + 3} on page 1); read it again"
    )
    # read again, it is whole
    assert fetch_all_sync(settings, "records", study).num_rows == total + 3
