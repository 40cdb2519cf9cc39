"""Incremental refresh against a full one, on one simulated study: seconds and API requests.

`python -m imednet_assets.bench.incremental <base_url> <study> --changed 0.01 [--destinations]`
runs, in this one process and through `imednet_all_job` (checks left out): a full refresh; then
`--changed` of the records modified upstream, a change-sensor tick and the run it asks for (the
changed entities and what reads them: the incremental refresh); then as many records modified
again and an incremental run of every asset (what the nightly reconcile runs); then a tick with
nothing changed. It prints one JSON line. With `--destinations` every destination the
environment leaves unconfigured gets a loopback server (as `demo --local-servers`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from imednet_assets.bench.paths import API_KEY, SECURITY_KEY
from imednet_assets.defs.results import materialization
from imednet_assets.demo import QUIET_CONSOLE


def _control(base_url: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{base_url}/_sim/{route}", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def _requests(base_url: str) -> int:
    """API requests the simulator has answered so far (control routes are not counted)."""
    return int(_control(base_url, "faults", {})["requests"])


def _slowest_steps(result: Any, n: int = 4) -> dict[str, float]:
    """The run's `n` slowest steps and their seconds: where an incremental refresh spends."""
    steps = {e.step_key: e.event_specific_data.duration_ms / 1000 for e in result.all_events
             if e.event_type_value == "STEP_SUCCESS"}
    return dict(sorted(steps.items(), key=lambda kv: -kv[1])[:n])


def measure(base_url: str, study: str, changed: float, concurrency: int,
            every_destination: bool) -> dict[str, Any]:
    import dagster as dg

    from imednet_assets.definitions import ALL_JOB_NAME, configured_destinations, defs
    from imednet_assets.defs.automation.changes import REQUESTS_PER_STUDY
    from imednet_assets.defs.automation.sensors import study_change_sensor
    from imednet_assets.defs.lake.io_manager import LakeIOManager
    from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
    from imednet_assets.defs.resources import ImednetResource

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [study])
    graph = defs.resolve_asset_graph()
    keys = {k for k in graph.get_all_asset_keys() if graph.get(k).is_materializable}
    if not every_destination:  # the lake and DuckDB only (the bundles are always configured)
        keys = {k for k in keys if k.path[0] in ("imednet", "duckdb")}
    all_job = defs.resolve_job_def(ALL_JOB_NAME)
    config = {"resources": {"imednet": {"config": {
        "concurrency": concurrency, "base_url": {"env": "IMEDNET_BASE_URL"},
        "api_key": {"env": "IMEDNET_API_KEY"}, "security_key": {"env": "IMEDNET_SECURITY_KEY"},
    }}}, **QUIET_CONSOLE}
    resources = {
        "imednet": ImednetResource(base_url=base_url, api_key=API_KEY, security_key=SECURITY_KEY),
        "lake_io_manager": LakeIOManager(),
    }
    slowest: dict[str, dict[str, float]] = {}

    def refresh(name: str, tags: dict[str, str], selection: set[dg.AssetKey],
                ) -> tuple[float, int, dict[str, Any]]:
        job = all_job.get_subset(asset_selection=selection, asset_check_selection=set())
        before, started = _requests(base_url), time.perf_counter()
        result = job.execute_in_process(partition_key=study, instance=instance,
                                        run_config=config, tags=tags)
        seconds = time.perf_counter() - started
        assert result.success
        slowest[name] = _slowest_steps(result)
        meta = materialization(result, "imednet/records").metadata
        return seconds, _requests(base_url) - before, {k: v.value for k, v in meta.items()}

    def tick() -> tuple[int, list[dg.RunRequest]]:
        before = _requests(base_url)
        with dg.build_sensor_context(instance=instance, definitions=defs,
                                     resources=resources) as context:
            result = study_change_sensor(context)
        return _requests(base_url) - before, list(getattr(result, "run_requests", None) or [])

    full_s, full_requests, full_meta = refresh("full", mode_tags(FULL), keys)
    records = int(full_meta["dagster/row_count"])
    modify = max(1, round(records * changed))
    _control(base_url, "advance", {"study_key": study, "modify": modify})
    change_tick_requests, [request] = tick()
    selection = set(request.asset_selection or keys) & keys
    inc_s, inc_requests, inc_meta = refresh("incremental", dict(request.tags), selection)
    assert inc_meta["mode"] == INCREMENTAL, inc_meta
    _control(base_url, "advance", {"study_key": study, "modify": modify})
    every_s, every_requests, _ = refresh("every asset", mode_tags(INCREMENTAL), keys)
    idle_tick_requests, idle_requests = tick()
    assert not idle_requests, "the sensor saw changes after the refresh"
    return {
        "destinations": ["lake", "duckdb",
                         *(configured_destinations() if every_destination else [])],
        "slowest_steps": slowest,
        "records": records, "modified": modify,
        "full_seconds": full_s, "full_requests": full_requests,
        "incremental_seconds": inc_s, "incremental_requests": inc_requests,
        "incremental_assets": sorted(k.to_user_string() for k in selection),
        "assets": len(keys),
        "records_updated": inc_meta.get("rows_updated"),
        "change_tick_requests": change_tick_requests,
        "every_asset_seconds": every_s, "every_asset_requests": every_requests,
        "tick_requests": idle_tick_requests, "entities": REQUESTS_PER_STUDY,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("study")
    parser.add_argument("--changed", type=float, default=0.01, help="share of records modified")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--destinations", action="store_true",
                        help="every destination (else the lake and DuckDB), on loopback "
                        "servers where unconfigured")
    args = parser.parse_args(argv)
    os.environ.update(IMEDNET_BASE_URL=args.base_url, IMEDNET_API_KEY=API_KEY,
                      IMEDNET_SECURITY_KEY=SECURITY_KEY)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imednet-bench-inc-")))
        os.environ["IMEDNET_ASSETS_DATA_DIR"] = str(work)  # read when the definitions import
        if args.destinations:
            from imednet_assets.defs.sinks.sql.definitions import URL_ENV
            from imednet_assets.local_servers.postgres import temporary_database
            from imednet_assets.local_servers.stack import local_destinations

            url = stack.enter_context(temporary_database("imednet_bench"))  # not the demo's
            os.environ[URL_ENV] = url.render_as_string(hide_password=False)
            stack.enter_context(local_destinations())
        out = measure(args.base_url, args.study, args.changed, args.concurrency,
                      args.destinations)
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
