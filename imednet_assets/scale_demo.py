"""`make scale-demo`: the same definitions on several machines, played on loopback.

It starts the simulator, an S3-compatible server for the lake (moto, a test double: production
uses S3, MinIO or GCS's S3 interoperability), a PostgreSQL-backed Dagster instance in a temporary
database, `dagster dev` (webserver and daemon) and Celery workers over the local RabbitMQ. Worker
`w1` stands for the machine that holds the DuckDB file and the bundles (it serves the local-files
queue too), the others for machines that hold nothing. It backfills every simulated study through
the webserver's GraphQL API, prints which worker ran which steps, then runs the single-machine
`imednet-assets demo` of the same studies and compares every destination whole. Exit status 1 on
any difference or failure.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from imednet_assets import settings
from imednet_assets.defs import execution
from imednet_assets.processes import start_group, stop_group

SEED = 17
API_KEY, SECURITY_KEY = "scale-demo-api-key", "scale-demo-security-key"
SQL_SCHEMA = "imednet_scale"
LAKE_BUCKET = "imednet-scale"


@dataclass
class BackfillReport:
    """What the backfill did: its status, seconds, and the steps each Celery worker ran."""

    status: str
    seconds: float
    steps_by_worker: dict[str, list[str]] = field(default_factory=dict)
    failed_runs: list[str] = field(default_factory=list)


def steps_by_worker(instance, run_ids: list[str]) -> dict[str, list[str]]:
    """worker name -> the step keys it ran, from the runs' engine events: dagster-celery records
    the worker's hostname when it starts a step."""
    import dagster as dg

    out: dict[str, list[str]] = {}
    for run_id in run_ids:
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = record.dagster_event
            data = event.engine_event_data if event else None
            worker = data.metadata.get("Celery worker") if data else None
            if worker is not None:
                out.setdefault(str(worker.value), []).append(event.step_key or "?")
    return {w: sorted(steps) for w, steps in sorted(out.items())}


@contextlib.contextmanager
def celery_workers(count: int, env: dict[str, str],
                   logs: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`count` worker processes by name (`w1`, `w2`, ...); `w1` serves the local-files queue too.
    Each is stopped, with whatever pool processes it started, at the end."""
    from imednet_assets.workers import worker_command, worker_queues

    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for i in range(count):
            name = f"w{i + 1}"
            cmd = worker_command(name, worker_queues(holds_local_files=i == 0))
            workers[name] = start_group(cmd, env={**os.environ, **env},
                                        log=logs / f"{name}.log")
        yield workers
    finally:
        for proc in workers.values():
            stop_group(proc)


def backfill(data: Path, env: dict[str, str], studies: list[str], workers: int) -> BackfillReport:
    """Every asset of `studies` as one backfill launched through GraphQL, on `workers` Celery
    workers; the instance is the one under `data` (PostgreSQL when DAGSTER_PG_URL is set)."""
    import dagster as dg

    from imednet_assets.webserver import dagster_dev, launch_backfill, wait_backfill

    with celery_workers(workers, env, data / "logs"), dagster_dev(data, env) as graphql:
        started = time.perf_counter()
        backfill_id = launch_backfill(graphql, studies)
        status = wait_backfill(graphql, backfill_id)
        seconds = time.perf_counter() - started
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        run_ids = [r.run_id for r in runs]
        failed = [r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
        return BackfillReport(status, seconds, steps_by_worker(instance, run_ids), failed)


def _single_machine(work: Path, env: dict[str, str]) -> Path:
    """`imednet-assets demo` of the same API into its own data dir: local lake, in process."""
    data = work / "single-machine"
    child = {k: v for k, v in os.environ.items()
             if not k.startswith(("IMEDNET_", "DAGSTER_", "AWS_"))}
    child.update({settings.BASE_URL_ENV: env[settings.BASE_URL_ENV],
                  settings.API_KEY_ENV: API_KEY, settings.SECURITY_KEY_ENV: SECURITY_KEY,
                  settings.DATA_DIR_ENV: str(data)})
    for key in ("IMEDNET_ASSETS_SQL_URL",):
        if key in env:
            child[key] = env[key]
    child["IMEDNET_ASSETS_SQL_SCHEMA"] = SQL_SCHEMA + "_single"
    cli = Path(sys.executable).with_name("imednet-assets")
    done = subprocess.run([str(cli), "demo"], env=child, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the single-machine demo failed:\n{done.stdout[-2000:]}"
                           f"{done.stderr[-2000:]}")
    return data


def differences(scaled: Path, single: Path, studies: list[str], sql_url: str | None,
                lake: object) -> list[str]:
    """Where the scaled-out stack differs from the single-machine one, compared whole."""
    from imednet_assets.compare import bundles_dump, duckdb_dump, lake_dump, sql_dump
    from imednet_assets.defs.lake.io_manager import LakeIOManager

    single_lake = LakeIOManager(root=str(single / "lake"))
    out = []
    for study in studies:
        pairs = {
            "lake": (lake_dump(lake, study), lake_dump(single_lake, study)),
            "duckdb": (duckdb_dump(scaled / settings.DUCKDB_FILENAME, study),
                       duckdb_dump(single / settings.DUCKDB_FILENAME, study)),
            "bundles": (bundles_dump(scaled / "bundles", study),
                        bundles_dump(single / "bundles", study)),
        }
        if sql_url:
            pairs["sql"] = (sql_dump(sql_url, SQL_SCHEMA, study),
                            sql_dump(sql_url, SQL_SCHEMA + "_single", study))
        for destination, (a, b) in pairs.items():
            if a != b:
                tables = sorted(t for t in set(a) | set(b) if a.get(t) != b.get(t))
                out.append(f"{destination} of study {study} differs in {', '.join(tables)}")
            elif not any(a.values()):
                out.append(f"{destination} of study {study} is empty")
    return out


@dataclass
class ScaleStack:
    """Everything but the workers and the webserver: the simulator's API, the instance and SQL
    databases, the lake, the environment every process gets, the studies as partitions."""

    work: Path
    data: Path
    env: dict[str, str]
    studies: list[str]

    @property
    def sql_url(self) -> str:
        return self.env["IMEDNET_ASSETS_SQL_URL"]


@contextlib.contextmanager
def scale_stack(studies: int, subjects: int, latency_ms: float = 0.0) -> Iterator[ScaleStack]:
    """Start the servers; this process's environment is the stack's until the end."""
    from imednet_assets.demo import prepare_dagster_home, register_studies
    from imednet_assets.local_servers.object_store import REGION, MotoS3Server
    from imednet_assets.local_servers.postgres import temporary_database
    from imednet_assets.simulator import SimulatorConfig, SimulatorServer

    saved = dict(os.environ)
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imednet-scale-")))
        sim = stack.enter_context(SimulatorServer(SimulatorConfig(
            seed=SEED, studies=studies, subjects=subjects, latency_ms=latency_ms,
            api_key=API_KEY, security_key=SECURITY_KEY), subprocess=True))
        s3 = stack.enter_context(MotoS3Server())
        s3.create_bucket(LAKE_BUCKET)
        key_id, secret = s3.create_credentials()
        s3.enforce_credentials()
        instance_db = stack.enter_context(temporary_database("imednet_scale_instance"))
        sql_db = stack.enter_context(temporary_database("imednet_scale_sql"))
        data = work / "machine-a"
        tag = uuid.uuid4().hex[:8]  # queues of this stack only, whatever else the broker holds
        env = {
            settings.BASE_URL_ENV: sim.base_url, settings.API_KEY_ENV: API_KEY,
            settings.SECURITY_KEY_ENV: SECURITY_KEY, settings.DATA_DIR_ENV: str(data),
            # dagster-postgres stores events through psycopg2
            "DAGSTER_PG_URL": instance_db.set(drivername="postgresql+psycopg2").render_as_string(
                hide_password=False),
            execution.EXECUTOR_ENV: execution.CELERY,
            execution.QUEUE_ENV: f"imednet-scale-{tag}",
            execution.LOCAL_QUEUE_ENV: f"imednet-scale-local-{tag}",
            "IMEDNET_ASSETS_SQL_URL": sql_db.render_as_string(hide_password=False),
            "IMEDNET_ASSETS_SQL_SCHEMA": SQL_SCHEMA,
            # the lake every machine shares (moto: a test double of S3)
            settings.LAKE_URL_ENV: f"s3://{LAKE_BUCKET}/lake",
            settings.S3_ENDPOINT_URL_ENV: s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": REGION,
        }
        os.environ.update(env)
        try:
            prepare_dagster_home(data)
            env["DAGSTER_HOME"] = os.environ["DAGSTER_HOME"]
            import dagster as dg

            with dg.DagsterInstance.get() as instance:
                keys = register_studies(instance)
            yield ScaleStack(work, data, env, keys)
        finally:
            os.environ.clear()
            os.environ.update(saved)


@dataclass
class ScaleReport:
    backfill: BackfillReport
    problems: list[str]


def scale_out(studies: int = 6, subjects: int = 6, workers: int = 2) -> ScaleReport:
    """The whole demo: backfill on `workers` Celery workers, then compare with one machine."""
    from imednet_assets.defs.lake.io_manager import configured_lake_io_manager

    with scale_stack(studies, subjects) as stack:
        print(f"simulator: {studies} studies x {subjects} subjects at "
              f"{stack.env[settings.BASE_URL_ENV]}")
        print(f"instance: PostgreSQL; broker: RabbitMQ (queues "
              f"{stack.env[execution.QUEUE_ENV]}, {stack.env[execution.LOCAL_QUEUE_ENV]})")
        report = backfill(stack.data, stack.env, stack.studies, workers)
        problems = [f"run {r} did not succeed" for r in report.failed_runs]
        if report.status != "COMPLETED_SUCCESS":
            problems.append(f"backfill ended {report.status}")
        single = _single_machine(stack.work, stack.env)
        problems += differences(stack.data, single, stack.studies, stack.sql_url,
                                configured_lake_io_manager())
    return ScaleReport(report, problems)


def run_scale_demo(studies: int = 6, subjects: int = 6, workers: int = 2) -> int:
    started = time.perf_counter()
    result = scale_out(studies, subjects, workers)
    report = result.backfill
    print(f"backfill of {studies} studies on {workers} workers: {report.status} in "
          f"{report.seconds:.1f} s")
    for worker, steps in report.steps_by_worker.items():
        print(f"  {worker}: {len(steps)} steps: {', '.join(steps)}")
    for problem in result.problems:
        print(f"DIFFERENCE: {problem}", file=sys.stderr)
    verdict = "differs" if result.problems else "holds exactly what the single-machine demo holds"
    print(f"every destination {verdict} ({time.perf_counter() - started:.1f} s)")
    return 1 if result.problems else 0
