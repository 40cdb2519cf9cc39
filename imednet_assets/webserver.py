"""Driving a Dagster webserver the way the UI does: its GraphQL API (launch a run, launch a
backfill, wait for them), and `dagster dev` (webserver and daemon) on this repo's workspace, started
and stopped as one process group."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from imednet_assets import settings
from imednet_assets.local_servers import free_port
from imednet_assets.processes import start_group, stop_group

REPO = Path(__file__).resolve().parents[1]
JOB = "imednet_all_job"
LOCATION = "imednet_assets"
READY_TIMEOUT_S = 180.0
POLL_S = 0.25

_LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
_RUN_STATUS = """
query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"""
_LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
_BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename ... on PartitionBackfill { status }
  }
}"""
_ASSET_KEYS = """{ assetNodes { assetKey { path } isMaterializable } }"""
FINAL_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
FINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class GraphQL:
    """The webserver's /graphql endpoint; errors raise with the server's message."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=60)

    def __call__(self, query: str, **variables: object) -> dict:
        answer = self._http.post(self.url, json={"query": query, "variables": variables})
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL error: {body['errors'][0].get('message')}")
        return body["data"]

    def close(self) -> None:
        self._http.close()


@contextlib.contextmanager
def dagster_dev(data: Path, env: dict[str, str], port: int | None = None) -> Iterator[GraphQL]:
    """`dagster dev` (webserver and daemon) on this repo's workspace with DAGSTER_HOME under
    `data`, yielding its GraphQL endpoint once the code location has loaded; the whole process
    group is stopped afterwards."""
    from imednet_assets.demo import prepare_dagster_home

    port = port or free_port()
    home = prepare_dagster_home(data)
    child_env = {**os.environ, **env, "DAGSTER_HOME": str(home),
                 settings.DATA_DIR_ENV: str(data)}
    dagster = Path(sys.executable).with_name("dagster")
    log = data / "dagster-dev.log"
    proc = start_group([str(dagster), "dev", "-w", str(REPO / "workspace.yaml"), "-p", str(port)],
                       env=child_env, log=log, cwd=REPO)
    graphql = GraphQL(f"http://127.0.0.1:{port}/graphql")
    try:
        _wait_ready(graphql, proc, log)
        yield graphql
    finally:
        graphql.close()
        stop_group(proc)


def _wait_ready(graphql: GraphQL, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            if graphql(_ASSET_KEYS)["assetNodes"]:
                return
        time.sleep(0.5)
    raise TimeoutError(f"dagster dev did not load the code location in {READY_TIMEOUT_S:g} s")


def launch_run(graphql: GraphQL, study: str) -> str:
    """What the UI sends for "Materialize" of every asset of one study partition."""
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                     "jobName": JOB},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": study}]},
    }
    answer = graphql(_LAUNCH_RUN, params=params)["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun for study {study}: {answer}")
    return answer["run"]["runId"]


def wait_run(graphql: GraphQL, run_id: str, timeout_s: float = 1800) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = graphql(_RUN_STATUS, runId=run_id)["runOrError"].get("status")
        if status in FINAL_RUN:
            return status
        time.sleep(POLL_S)
    raise TimeoutError(f"run {run_id} not finished after {timeout_s:g} s")


def launch_backfill(graphql: GraphQL, studies: list[str]) -> str:
    """What the UI sends for "Materialize all" with several study partitions chosen."""
    # what the button materializes: not the assets only their own job records (a data cut)
    keys = [node["assetKey"] for node in graphql(_ASSET_KEYS)["assetNodes"]
            if node["isMaterializable"]]
    params = {"partitionNames": studies, "assetSelection": keys, "fromFailure": False}
    answer = graphql(_LAUNCH_BACKFILL, params=params)["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill: {answer}")
    return answer["backfillId"]


def wait_backfill(graphql: GraphQL, backfill_id: str, timeout_s: float = 3600) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = graphql(_BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
        if status in FINAL_BACKFILL:
            return status
        time.sleep(POLL_S)
    raise TimeoutError(f"backfill {backfill_id} not finished after {timeout_s:g} s")
