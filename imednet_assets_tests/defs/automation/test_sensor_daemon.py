"""The sensors as a deployment runs them: `dagster dev`'s daemon ticks the discovery sensor (on by
default), which adds the simulator's study and runs it in full; once records change upstream and
the change sensor is turned on, the daemon launches the run it asks for, which materializes the
records, their revisions and what reads them, checked by the job's own checks, and succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imednet_assets import settings
from imednet_assets.defs.modes import TRIGGER_TAG
from imednet_assets.simulator import SimulatorConfig, SimulatorServer
from imednet_assets.webserver import LOCATION, GraphQL, dagster_dev, wait_run
from imednet_assets_tests.defs.ingest.conftest import API_KEY, SECURITY_KEY

_START_SENSOR = """
mutation($sensor: SensorSelector!) {
  startSensor(sensorSelector: $sensor) { __typename ... on PythonError { message } }
}"""
_RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results {
    runId status tags { key value } assetSelection { path }
    assetCheckSelection { name assetKey { path } }
  } } }
}"""
WAIT_S = 300.0

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]


def _runs(graphql: GraphQL, **tags: str) -> list[dict]:
    flt = {"tags": [{"key": k, "value": v} for k, v in tags.items()]} if tags else {}
    return graphql(_RUNS, filter=flt)["runsOrError"]["results"]


def _first_run(graphql: GraphQL, **tags: str) -> dict:
    """The first run the daemon launches with `tags` (the sensors tick every few seconds)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if runs := _runs(graphql, **tags):
            return runs[-1]
        time.sleep(1.0)
    raise TimeoutError(f"no run tagged {tags} after {WAIT_S:g} s")


def test_the_daemon_launches_what_the_change_sensor_asks(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))  # dagster_dev sets it here
    config = SimulatorConfig(seed=5, studies=1, subjects=3, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    with SimulatorServer(config, subprocess=True) as sim:
        [study] = sorted(sim.stats())
        env = {settings.BASE_URL_ENV: sim.base_url, settings.API_KEY_ENV: API_KEY,
               settings.SECURITY_KEY_ENV: SECURITY_KEY}
        with dagster_dev(tmp_path / "data", env) as graphql:
            # the discovery sensor's full run of the new study (by its tag: the hourly freshness
            # schedule may launch a run of its own job in the meantime)
            first = _first_run(graphql, **{"dagster/sensor_name": "study_discovery_sensor"})
            assert wait_run(graphql, first["runId"], WAIT_S) == "SUCCESS"

            sim.advance(study_key=study, modify=2)
            answer = graphql(_START_SENSOR, sensor={
                "repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                "sensorName": "study_change_sensor"})["startSensor"]
            assert answer["__typename"] == "Sensor", answer
            run = _first_run(graphql, **{TRIGGER_TAG: "study_change_sensor"})
            assert wait_run(graphql, run["runId"], WAIT_S) == "SUCCESS"

    assets = sorted("/".join(a["path"]) for a in run["assetSelection"])
    assert {"imednet/records", "imednet/record_revisions", "duckdb/records_long",
            "duckdb/form_tables", "duckdb/record_revisions"} <= set(assets)
    assert not [a for a in assets if a.startswith("imednet/")
                and a not in ("imednet/records", "imednet/record_revisions")]
    assert "duckdb/subjects" not in assets
    checks = {("/".join(c["assetKey"]["path"]), c["name"]) for c in run["assetCheckSelection"]}
    assert ("imednet/records", "lake_matches_api") in checks
    assert ("imednet/records", "lake_is_fresh") not in checks
    assert {t["key"]: t["value"] for t in run["tags"]}["dagster/partition"] == study

