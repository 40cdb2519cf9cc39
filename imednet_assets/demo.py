"""`imednet-assets demo` and `dev`: the pipeline on the embedded simulator or a real account."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imednet_assets import settings
from imednet_assets.instance import prepare_environment, write_instance_yaml

if TYPE_CHECKING:
    from dagster import DagsterInstance

DEMO_API_KEY = "demo-api-key"
DEMO_SECURITY_KEY = "demo-security-key"
# the summary is the demo's output (failed steps included, one line each); Dagster's per-step
# lines and stack traces stay in the run's event log
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def prepare_dagster_home(data: Path) -> Path:
    """A persistent DAGSTER_HOME under the data dir, so partitions and history survive restarts,
    with the instance config the project owns written afresh (the repo's `dagster.yaml`, storage
    in PostgreSQL when `DAGSTER_PG_URL` is set)."""
    home = data / "dagster_home"
    prepare_environment()
    write_instance_yaml(home)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@contextlib.contextmanager
def api_source(studies: int, subjects: int, seed: int) -> Iterator[str]:
    """Yield a description of the API in use: the configured account, else a simulator we start."""
    if os.environ.get(settings.BASE_URL_ENV):
        yield settings.redact(os.environ[settings.BASE_URL_ENV])
        return
    from imednet_assets.simulator import SimulatorConfig, SimulatorServer

    config = SimulatorConfig(seed=seed, studies=studies, subjects=subjects)
    with SimulatorServer(config, subprocess=True) as sim:
        os.environ[settings.BASE_URL_ENV] = sim.base_url
        os.environ[settings.API_KEY_ENV] = DEMO_API_KEY
        os.environ[settings.SECURITY_KEY_ENV] = DEMO_SECURITY_KEY
        try:
            yield f"built-in simulator at {sim.base_url} ({studies} studies x {subjects} subjects)"
        finally:
            for name in (settings.BASE_URL_ENV, settings.API_KEY_ENV, settings.SECURITY_KEY_ENV):
                os.environ.pop(name, None)


def _table_counts(db_path: Path) -> dict[str, dict[str, int]]:
    """Rows per table per study in the DuckDB file (read only)."""
    import duckdb

    counts: dict[str, dict[str, int]] = {}
    if not db_path.exists():
        return counts
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() "
                "WHERE schema_name = 'main' ORDER BY table_name"
            ).fetchall()
        ]
        for table in tables:
            rows = con.execute(
                f'SELECT study_key, count(*) FROM "{table}" GROUP BY study_key ORDER BY study_key'
            ).fetchall()
            counts[table] = {str(study): n for study, n in rows}
    return counts


def _print_summary(
    counts: dict[str, dict[str, int]], studies: list[str], title: str = "table"
) -> None:
    width = max([len(t) for t in counts] + [len(title)])
    print(f"\n{title:<{width}}  " + "  ".join(f"{s:>12}" for s in studies))
    for table, per_study in counts.items():
        cells = "  ".join(f"{per_study.get(s, 0):>12,}" for s in studies)
        print(f"{table:<{width}}  {cells}")


def _destination_rows(result, study: str, rows: dict[str, dict[str, int]]) -> None:
    """Rows (or documents, nodes) each destination asset reported writing for `study`."""
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        key = materialization.asset_key.to_user_string()
        if key.split("/")[0] in ("imednet", "duckdb"):
            continue  # the lake and DuckDB are summed up from their files
        count = materialization.metadata.get("dagster/row_count")
        if count is not None:
            rows.setdefault(key, {})[study] = int(count.value)


def step_failures(result) -> dict[str, list[str]]:
    """Failed steps grouped by their message's first line (a destination that cannot be reached
    fails each of its assets the same way)."""
    failures: dict[str, list[str]] = {}
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        user = data.user_failure_data
        text = user.description if user and user.description else data.error.message
        message = (text or "failed").strip().splitlines()[0]
        failures.setdefault(message, []).append(event.step_key)
    return failures


def register_studies(instance: DagsterInstance) -> list[str]:
    """Add every study the API lists as a `study` partition (what the discovery sensor does)."""
    from imednet_assets.client.settings import ClientSettings
    from imednet_assets.client.sync import list_studies_sync
    from imednet_assets.defs.partitions import study_partitions

    study_keys = sorted(s["studyKey"] for s in list_studies_sync(ClientSettings.from_env()))
    known = set(instance.get_dynamic_partitions(study_partitions.name))
    new = [key for key in study_keys if key not in known]
    instance.add_dynamic_partitions(study_partitions.name, new)
    return study_keys


@dataclass
class StudyRun:
    """One in-process run of the all-assets job for one study, as the console reports it."""

    result: Any
    ok: bool
    status: str
    """`ok in 1.2 s`, or `FAILED [failed checks] in 1.2 s`."""

    def print_failures(self) -> None:
        for message, steps in step_failures(self.result).items():
            print(f"  {', '.join(steps)}: {message}")


def run_study(job: Any, instance: DagsterInstance, study: str,
              tags: dict[str, str] | None = None) -> StudyRun:
    """Run `job` for `study` in process (Dagster's console quiet, our progress line on stderr,
    failures kept in the result); ok when every step and every asset check passed."""
    from imednet_assets.progress import RunProgress

    started = time.perf_counter()
    run_id = str(uuid.uuid4())
    with RunProgress(instance, run_id, study):
        result = job.execute_in_process(partition_key=study, instance=instance, tags=tags,
                                        run_id=run_id, raise_on_error=False,
                                        run_config=QUIET_CONSOLE)
    bad_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    ok = result.success and not bad_checks
    status = "ok" if ok else f"FAILED {bad_checks or ''}".strip()
    return StudyRun(result, ok, f"{status} in {time.perf_counter() - started:.1f} s")


def run_demo(
    studies: int = 3, subjects: int = 40, seed: int = 7, local_servers: bool = False
) -> int:
    """Materialize every asset for every study and print rows per table; 0 when all passed.

    `local_servers` starts a loopback server for every destination the environment leaves out.
    """
    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    os.environ[settings.DATA_DIR_ENV] = str(data)
    prepare_dagster_home(data)
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(api_source(studies, subjects, seed))
        print(f"source: {source}")
        if local_servers:
            from imednet_assets.local_servers.stack import local_destinations

            for server in stack.enter_context(local_destinations()):
                print(f"started: {settings.redact(server)}")
        import dagster as dg

        from imednet_assets.definitions import configured_destinations, defs

        print(f"destinations: parquet lake, duckdb, {', '.join(configured_destinations())}")
        instance = dg.DagsterInstance.get()
        study_keys = register_studies(instance)
        job = defs.resolve_job_def("imednet_all_job")
        failed: list[str] = []
        destination_rows: dict[str, dict[str, int]] = {}
        for key in study_keys:
            run = run_study(job, instance, key)
            _destination_rows(run.result, key, destination_rows)
            print(f"study {key}: {run.status}")
            if not run.ok:
                failed.append(key)
                run.print_failures()
    _print_summary(_table_counts(settings.duckdb_path()), study_keys)
    if destination_rows:
        _print_summary(dict(sorted(destination_rows.items())), study_keys,
                       "destination asset (rows written)")
    print(f"\ntook {time.perf_counter() - started:.1f} s")
    print(f"DuckDB:       {settings.duckdb_path()}")
    print(f"Parquet lake: {settings.lake_root()}")
    print(f"File bundles: {settings.data_dir() / 'bundles'}")
    print("Dagster UI:   make dev")
    if failed:
        print(f"failed studies: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_dev(port: int = 3000) -> int:
    """Start the simulator, then `dagster dev` here with DAGSTER_HOME under ./data."""
    data = settings.data_dir()
    data.mkdir(parents=True, exist_ok=True)
    os.environ[settings.DATA_DIR_ENV] = str(data)
    prepare_dagster_home(data)
    repo = Path(__file__).resolve().parent.parent
    dagster = Path(sys.executable).with_name("dagster")
    with api_source(studies=3, subjects=40, seed=7) as source:
        print(f"source: {source}")
        import dagster as dg

        # the studies are partitions from the start, so Materialize works before any sensor tick
        with dg.DagsterInstance.get() as instance:
            print(f"studies: {', '.join(register_studies(instance))}")
        cmd = [str(dagster), "dev", "-w", str(repo / "workspace.yaml"), "-p", str(port)]
        return subprocess.call(cmd, cwd=repo)
