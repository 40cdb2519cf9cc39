"""Celery workers that run a run's steps (`IMEDNET_ASSETS_EXECUTOR=celery`).

A worker on the machine that holds the local files (the DuckDB file, the bundles, a local lake)
serves the local-files queue and the default queue; a worker on any other machine serves the
default queue only. Every worker needs the same code, the same environment as the webserver (API
keys, destination settings, `DAGSTER_PG_URL`, the lake URL) and the broker.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from imednet_assets.defs.execution import default_queue, local_queue

APP = "imednet_assets.celery_app"


def worker_queues(*, holds_local_files: bool) -> list[str]:
    return [default_queue(), local_queue()] if holds_local_files else [default_queue()]


def worker_command(name: str, queues: list[str], concurrency: int = 1) -> list[str]:
    """The `celery worker` command line of one worker: `concurrency` steps at a time, none
    reserved ahead (a reserved step would wait behind a long one while another worker idles)."""
    celery = Path(sys.executable).with_name("celery")
    return [
        str(celery), "-A", APP, "worker", "--queues", ",".join(queues),
        "--hostname", f"{name}@%h", "--concurrency", str(concurrency),
        "--prefetch-multiplier", "1", "--loglevel", "INFO",
        # gossip, mingle and heartbeats talk between workers; steps do not need them
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]


def run_worker(name: str, *, holds_local_files: bool, concurrency: int) -> int:
    """Replace this process with the worker (it stops on Ctrl+C or SIGTERM, finishing its step)."""
    cmd = worker_command(name, worker_queues(holds_local_files=holds_local_files), concurrency)
    os.execv(cmd[0], cmd)
    return 0  # not reached
