"""Where steps run: the executor the environment chooses, and which queue each step goes to."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from imednet_assets.defs import execution
from imednet_assets.settings import LAKE_URL_ENV

QUEUE_TAG = "dagster-celery/queue"


_PRINT_QUEUES = (
    "import json; from imednet_assets.definitions import defs; print(json.dumps("
    "{a.node_def.name: a.node_def.tags['" + QUEUE_TAG + "'] "
    "for a in defs.resolve_asset_graph().assets_defs if a.is_executable}))"
)


def _queues(lake_url: str | None, **env: str) -> dict[str, str]:
    """Each op of the definitions -> its queue, as a fresh process under `lake_url` sees them
    (the tags are set when the definitions are imported)."""
    child = {k: v for k, v in os.environ.items() if not k.startswith("IMEDNET_")}
    child.update({execution.QUEUE_ENV: "net", execution.LOCAL_QUEUE_ENV: "here", **env})
    if lake_url:
        child[LAKE_URL_ENV] = lake_url
    done = subprocess.run([sys.executable, "-c", _PRINT_QUEUES], env=child, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_with_a_local_lake_every_step_stays_on_the_machine() -> None:
    ops = _queues(None)
    assert "imednet_ingest" in ops and "duckdb_write" in ops
    assert set(ops.values()) == {"here"}


def test_with_an_object_store_lake_only_file_steps_are_pinned() -> None:
    ops = _queues("s3://bucket/lake", IMEDNET_ASSETS_SQL_URL="postgresql://u@127.0.0.1:1/none")
    here = {op for op, queue in ops.items() if queue == "here"}
    assert ops["imednet_ingest"] == ops["sql_write"] == "net"
    assert ops["imednet__records_lake_matches_api"] == "net"
    assert here == {op for op in ops if op.startswith(tuple(execution.LOCAL_FILE_DESTINATIONS))}
    assert {"duckdb_write", "bundles_write", "duckdb__form_tables_every_record_once"} <= here


def test_the_executor_follows_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(execution.EXECUTOR_ENV, raising=False)
    assert execution.run_executor().name == "in_process"
    monkeypatch.setenv(execution.EXECUTOR_ENV, "Celery")
    assert execution.run_executor().name == "celery"
    monkeypatch.setenv(execution.EXECUTOR_ENV, "kubernetes")
    with pytest.raises(ValueError, match="IMEDNET_ASSETS_EXECUTOR must be 'in_process' or "
                                         "'celery', got 'kubernetes'"):
        execution.run_executor()


def test_the_broker_password_stays_in_the_environment(monkeypatch) -> None:
    """Run config is shown in the UI and stored with every run: it names the variable only."""
    monkeypatch.setenv(execution.BROKER_URL_ENV, "amqp://svc:s3cret-pw@broker:5672//")
    config = execution.celery_config()
    assert config["broker"] == {"env": execution.BROKER_URL_ENV}
    assert "s3cret-pw" not in repr(config)
    assert config["config_source"]["task_acks_late"] is True
