"""Where steps run: in the run's own process (the default), or on Celery workers over a broker.

`IMEDNET_ASSETS_EXECUTOR=celery` sends every step of a run launched by the webserver, a sensor, a
schedule or a backfill to Celery workers (`dagster-celery`); the CLI's `demo` and `refresh` always
run in process. A step that writes or reads a file on one machine's disk (the DuckDB file, the
bundles, and any step at all while the lake is a local folder) goes to the local-files queue, which
only the workers on that machine serve; the other steps go to the default queue, served by every
worker. The definitions are the same either way: only the environment differs.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_celery import celery_executor
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

from imednet_assets.settings import lake_url

EXECUTOR_ENV = "IMEDNET_ASSETS_EXECUTOR"
BROKER_URL_ENV = "IMEDNET_ASSETS_CELERY_BROKER_URL"
QUEUE_ENV = "IMEDNET_ASSETS_CELERY_QUEUE"
LOCAL_QUEUE_ENV = "IMEDNET_ASSETS_CELERY_LOCAL_QUEUE"

IN_PROCESS, CELERY = "in_process", "celery"
#: destinations (and the data cuts) that write files on the disk of the machine that runs them
LOCAL_FILE_DESTINATIONS = frozenset({"duckdb", "bundles", "statistical", "odm", "cuts"})
DEFAULT_BROKER_URL = "pyamqp://guest@127.0.0.1:5672//"  # RabbitMQ on loopback, its guest user
DEFAULT_QUEUE = "dagster"  # dagster-celery's own default queue
DEFAULT_LOCAL_QUEUE = "imednet-local"


def executor_kind() -> str:
    kind = (os.environ.get(EXECUTOR_ENV) or IN_PROCESS).strip().lower()
    if kind not in (IN_PROCESS, CELERY):
        raise ValueError(f"{EXECUTOR_ENV} must be {IN_PROCESS!r} or {CELERY!r}, got {kind!r}")
    return kind


def default_queue() -> str:
    return os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE


def local_queue() -> str:
    return os.environ.get(LOCAL_QUEUE_ENV) or DEFAULT_LOCAL_QUEUE


def step_tags(destination: str | None = None) -> dict[str, str]:
    """Op tags routing a step of `destination` (None: the lake's own steps): to the local-files
    queue when it touches this machine's files (every step does while the lake is a local
    folder), else to the default queue."""
    local = destination in LOCAL_FILE_DESTINATIONS or lake_url() is None
    return {DAGSTER_CELERY_QUEUE_TAG: local_queue() if local else default_queue()}


def celery_config() -> dict:
    """The Celery executor's config: the broker from the environment (its password never lands
    in run config), late acknowledgement so a task whose worker vanished is delivered again."""
    return {
        # {"env": ...} resolves in the run worker; run config shows the variable's name only
        "broker": {"env": BROKER_URL_ENV} if os.environ.get(BROKER_URL_ENV) else
        DEFAULT_BROKER_URL,
        "backend": "rpc://",
        "config_source": {
            "task_default_queue": default_queue(),
            # a worker that dies mid-step leaves its task unacknowledged: the broker hands it to
            # another worker. A pool process killed under a live worker fails the step instead,
            # and the run fails as a whole: run retries (dagster.yaml) launch it again.
            "task_acks_late": True,
            "worker_prefetch_multiplier": 1,
            "broker_connection_retry_on_startup": True,
        },
    }


def run_executor() -> dg.ExecutorDefinition:
    """The executor of every job, chosen by `IMEDNET_ASSETS_EXECUTOR`."""
    if executor_kind() == CELERY:
        return celery_executor.configured(celery_config(), name="celery")
    # One process per run, not per step: a run launched from the UI, a sensor or a backfill
    # then costs what `imednet-assets demo` costs, instead of a Python start-up (2-3 s) for
    # each of its steps. Pools still hold one writer per destination across runs.
    return dg.in_process_executor
