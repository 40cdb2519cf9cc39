"""Scale-out on loopback, as `make scale-demo` plays it: a PostgreSQL instance, the webserver and
daemon (`dagster dev`), Celery workers over the local RabbitMQ, and runs launched through GraphQL.

Real servers throughout (PostgreSQL, RabbitMQ, the lake's store); nothing is mocked. A killed
worker is a real SIGKILL of the process running the step."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import dagster as dg
import httpx
import psutil
import pytest

from imednet_assets import settings
from imednet_assets.defs.execution import LOCAL_FILE_DESTINATIONS
from imednet_assets.defs.lake.io_manager import configured_lake_io_manager
from imednet_assets.scale_demo import (
    ScaleStack,
    _single_machine,
    backfill,
    celery_workers,
    differences,
    scale_stack,
    steps_by_worker,
)
from imednet_assets.webserver import dagster_dev, launch_run, wait_run

pytestmark = [pytest.mark.timeout(900), pytest.mark.slow]
T = TypeVar("T")


@pytest.fixture(scope="module")
def stack() -> Iterator[ScaleStack]:
    with scale_stack(studies=2, subjects=3) as running:
        yield running


def _sim(stack: ScaleStack, route: str, body: dict) -> dict:
    base = stack.env[settings.BASE_URL_ENV]
    answer = httpx.post(f"{base}/_sim/{route}", json=body, timeout=60)
    answer.raise_for_status()
    return answer.json()


def _wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 180) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not seen in {timeout_s:g} s")


def _exact(stack: ScaleStack, studies: list[str]) -> list[str]:
    """Differences between the stack's destinations and a single-machine demo of the same API."""
    single = _single_machine(stack.work, stack.env)
    return differences(stack.data, single, studies, stack.sql_url, configured_lake_io_manager())


def test_a_worker_killed_mid_step_fails_the_run_and_its_retry_ends_exact(stack) -> None:
    study = stack.studies[0]
    _sim(stack, "advance", {"study_key": study, "modify": 5, "add": 2})
    with celery_workers(2, stack.env, stack.data / "logs") as workers, \
            dagster_dev(stack.data, stack.env) as graphql, dg.DagsterInstance.get() as instance:
        _sim(stack, "faults", {"latency_ms": 400})  # the ingest takes seconds: time to kill it
        run_id = launch_run(graphql, study)

        def ingest_worker() -> str | None:
            ran = steps_by_worker(instance, [run_id])
            return next((w for w, steps in ran.items() if "imednet_ingest" in steps), None)

        worker = _wait_for("the ingest step starting on a worker", ingest_worker)
        time.sleep(1.0)  # in the middle of its API reads
        pool = psutil.Process(workers[worker.split("@")[0]].pid).children(recursive=True)
        assert pool, f"worker {worker} has no pool process"
        for process in pool:
            process.kill()
        _sim(stack, "faults", {"latency_ms": 0})
        assert wait_run(graphql, run_id, timeout_s=300) == "FAILURE"

        def retry() -> dg.DagsterRun | None:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
            return runs[0] if runs else None

        again = _wait_for("the run retry", retry, timeout_s=300)
        assert wait_run(graphql, again.run_id, timeout_s=300) == "SUCCESS"
    assert _exact(stack, [study]) == []


def test_two_workers_share_one_backfill_and_match_a_single_machine(stack) -> None:
    _sim(stack, "advance", {"study_key": stack.studies[-1], "modify": 4, "delete": 1})
    report = backfill(stack.data, stack.env, stack.studies, workers=2)
    assert report.status == "COMPLETED_SUCCESS"
    assert report.failed_runs == []
    by_name = {worker.split("@")[0]: steps for worker, steps in report.steps_by_worker.items()}
    assert set(by_name) == {"w1", "w2"}, report.steps_by_worker
    # the files stay with the machine that holds them
    assert {"duckdb_write", "bundles_write"} <= set(by_name["w1"])
    assert not {s for s in by_name["w2"] if s.startswith(tuple(LOCAL_FILE_DESTINATIONS))}
    assert _exact(stack, stack.studies) == []
