"""UI-launched work against the CLI: one study run and a backfill of many small studies, each
launched through the webserver's GraphQL API (what the UI's buttons send) and timed from the
launch to success, beside the same studies run in process as `imednet-assets demo` runs them.

Usage: python -m imednet_assets.bench.ui --studies 1 --subjects 40   (prints one JSON line)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from imednet_assets import settings
from imednet_assets.bench.child import run_json
from imednet_assets.bench.paths import API_KEY, SECURITY_KEY
from imednet_assets.webserver import (
    JOB,
    dagster_dev,
    launch_backfill,
    launch_run,
    wait_backfill,
    wait_run,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance, RunsFilter


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


def unsuccessful_runs(instance: DagsterInstance, launched: RunsFilter) -> list[str]:
    """The launched work's runs that did not succeed, as `<run id>: <status>`. Only those: the
    daemon's schedules (the hourly freshness check, the nightly reconcile) may run beside it."""
    import dagster as dg

    return [f"{r.run_id}: {r.status.value}" for r in instance.get_runs(filters=launched)
            if r.status != dg.DagsterRunStatus.SUCCESS]


def _failed_runs(data: Path, launched: RunsFilter) -> list[str]:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(data / "dagster_home")
    with dg.DagsterInstance.get() as instance:
        return unsuccessful_runs(instance, launched)


def measure(studies: int, subjects: int, latency_ms: float, seed: int) -> dict:
    import dagster as dg

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
                run_id = launch_run(graphql, keys[0])
                how, status = "run", wait_run(graphql, run_id)
                launched = dg.RunsFilter(run_ids=[run_id])
            else:
                backfill_id = launch_backfill(graphql, keys)
                how, status = "backfill", wait_backfill(graphql, backfill_id)
                launched = dg.RunsFilter(tags={"dagster/backfill": backfill_id})
            ui_s = time.perf_counter() - started
        failed_runs = _failed_runs(ui_data, launched)
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
            f"| {'yes' if green else 'NO: ' + ', '.join([r['status'], *r['ui_failed_runs']])} |")
    return lines


def run_measure(studies: int, subjects: int, latency_ms: float) -> dict:
    """`measure` in its own process (it starts servers and sets the environment)."""
    return run_json("imednet_assets.bench.ui", "--studies", str(studies), "--subjects",
                    str(subjects), "--latency-ms", str(latency_ms), what="UI")


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
