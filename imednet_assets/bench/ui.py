"""UI-launched work against the CLI: one study run and a backfill of many small studies, each
launched through the webserver's GraphQL API (what the UI's buttons send) and timed from the
launch to success, beside the same studies run in process as `imednet-assets demo` runs them.

Usage: python -m imednet_assets.bench.ui --studies 1 --subjects 40   (prints one JSON line)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson

from imednet_assets import settings
from imednet_assets.bench.paths import API_KEY, SECURITY_KEY
from imednet_assets.local_servers import free_port

REPO = Path(__file__).resolve().parents[2]
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
_ASSET_KEYS = """{ assetNodes { assetKey { path } } }"""
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
    log = (data / "dagster-dev.log").open("wb")
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", str(REPO / "workspace.yaml"), "-p", str(port)],
        cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    graphql = GraphQL(f"http://127.0.0.1:{port}/graphql")
    try:
        _wait_ready(graphql, proc, data / "dagster-dev.log")
        yield graphql
    finally:
        graphql.close()
        _stop_group(proc)
        log.close()


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


def _stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


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
    keys = [node["assetKey"] for node in graphql(_ASSET_KEYS)["assetNodes"]]
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


def _register(data: Path) -> list[str]:
    """The API's studies as partitions of a fresh instance under `data` (what `dev` does)."""
    import dagster as dg

    from imednet_assets.demo import prepare_dagster_home, register_studies

    prepare_dagster_home(data)
    with dg.DagsterInstance.get() as instance:
        return register_studies(instance)


def _cli_seconds(data: Path) -> tuple[float, list[str]]:
    """Every study run in process, one after the other, as `imednet-assets demo` runs them."""
    import dagster as dg

    from imednet_assets.definitions import defs
    from imednet_assets.demo import run_study

    os.environ[settings.DATA_DIR_ENV] = str(data)
    studies = _register(data)
    job = defs.resolve_job_def(JOB)
    failed = []
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        for study in studies:
            if not run_study(job, instance, study).ok:
                failed.append(study)
        return time.perf_counter() - started, failed


def _failed_runs(data: Path) -> list[str]:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(data / "dagster_home")
    with dg.DagsterInstance.get() as instance:
        return [r.run_id for r in instance.get_runs() if r.status != dg.DagsterRunStatus.SUCCESS]


def measure(studies: int, subjects: int, latency_ms: float, seed: int) -> dict:
    from imednet_assets.simulator import SimulatorConfig, SimulatorServer

    config = SimulatorConfig(seed=seed, studies=studies, subjects=subjects, latency_ms=latency_ms,
                             api_key=API_KEY, security_key=SECURITY_KEY)
    with SimulatorServer(config, subprocess=True) as sim, \
            tempfile.TemporaryDirectory(prefix="imednet-bench-ui-") as tmp:
        env = {settings.BASE_URL_ENV: sim.base_url, settings.API_KEY_ENV: API_KEY,
               settings.SECURITY_KEY_ENV: SECURITY_KEY}
        os.environ.update(env)
        records = sum(int(s["records"]) for s in sim.stats().values())
        cli_s, cli_failed = _cli_seconds(Path(tmp) / "cli")
        ui_data = Path(tmp) / "ui"
        keys = _register(ui_data)
        with dagster_dev(ui_data, env) as graphql:
            started = time.perf_counter()
            if len(keys) == 1:
                how, status = "run", wait_run(graphql, launch_run(graphql, keys[0]))
            else:
                how, status = "backfill", wait_backfill(graphql, launch_backfill(graphql, keys))
            ui_s = time.perf_counter() - started
        failed_runs = _failed_runs(ui_data)
    return {"studies": studies, "records": records, "launched_as": how, "status": status,
            "cli_seconds": cli_s, "ui_seconds": ui_s, "cli_failed": cli_failed,
            "ui_failed_runs": failed_runs}


def ui_table(runs: list[dict]) -> list[str]:
    """The UI section of docs/benchmarks.md."""
    lines = [
        "Work launched through the webserver (`dagster dev`, GraphQL: what the UI's Materialize "
        "and backfill buttons send), timed from the launch to success, against the same studies "
        "run in process one after the other as `imednet-assets demo` runs them. Target: at most "
        "1.5x the CLI.",
        "",
        "| launched as | studies | records | CLI s | UI s | UI / CLI | every partition green |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        green = r["status"] in ("SUCCESS", "COMPLETED_SUCCESS") and not r["ui_failed_runs"]
        lines.append(
            f"| {r['launched_as']} | {r['studies']:,} | {r['records']:,} | {r['cli_seconds']:.1f} "
            f"| {r['ui_seconds']:.1f} | {r['ui_seconds'] / r['cli_seconds']:.2f}x "
            f"| {'yes' if green else 'NO: ' + r['status']} |")
    return lines


def run_measure(studies: int, subjects: int, latency_ms: float) -> dict:
    """`measure` in its own process (it starts servers and sets the environment)."""
    cmd = [sys.executable, "-m", "imednet_assets.bench.ui", "--studies", str(studies),
           "--subjects", str(subjects), "--latency-ms", str(latency_ms)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"UI bench failed:\n{tail}")
    return orjson.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=1)
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    result = measure(args.studies, args.subjects, args.latency_ms, args.seed)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
