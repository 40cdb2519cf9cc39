"""The Celery app the workers run: dagster-celery's step task, configured from the same environment
as the executor (`defs/execution.py`), so a worker and a run always agree on broker and queues.

    celery -A imednet_assets.celery_app worker -Q dagster,imednet-local -n w1@%h --concurrency 1

(`imednet-assets worker` starts it so.) The broker URL is read from the environment here, never
written to a file.
"""

from __future__ import annotations

import os

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from imednet_assets.defs.execution import BROKER_URL_ENV, celery_config


def _app_args() -> dict:
    config = celery_config()
    broker = os.environ.get(BROKER_URL_ENV) or config["broker"]
    executor = CeleryExecutor.for_cli(broker=broker, backend=config["backend"],
                                      config_source=config["config_source"])
    return executor.app_args()


app = make_app(_app_args())
execute_plan = create_task(app)
