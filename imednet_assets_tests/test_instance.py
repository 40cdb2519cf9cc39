"""The production instance: the repo's `dagster.yaml` as Dagster loads it, the file written into a
DAGSTER_HOME, and a study materialized with run and event storage on the local PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.storage.runs import SqliteRunStorage
from dagster_postgres import (
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)

from imednet_assets.demo import prepare_dagster_home
from imednet_assets.instance import (
    PG_URL_ENV,
    REPO_DAGSTER_YAML,
    dagster_pg_url,
    describe_storage,
    instance_config,
    instance_yaml,
    main,
    prepare_environment,
    write_instance_yaml,
)
from imednet_assets.local_servers.postgres import temporary_database

REPO = Path(__file__).resolve().parents[1]
# trust auth lets any password in, so a password can be set here and looked for in the output
PASSWORD = "pg-secret-6c1d9e"


def test_repo_dagster_yaml_sets_the_production_settings(tmp_path: Path) -> None:
    home = write_instance_yaml(tmp_path, env={}).parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # run monitoring; the default run launcher cannot resume runs...
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_monitoring_start_timeout_seconds > 0
        # ...nor tell that its run worker died: a run stuck "started" is failed after a bound
        assert instance.run_monitoring_max_runtime_seconds > 0
        # a slot held by a run that ended without giving it back is freed
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        # a crashed run is retried, a failed asset is not
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries >= 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        # the daemons that do the above run under `dagster dev` / `dagster-daemon run`
        assert {"MONITORING", "EVENT_LOG_CONSUMER", "QUEUED_RUN_COORDINATOR"} <= set(
            instance.get_required_daemon_types()
        )
        # queue: a bound on runs, one run per study at a time, a quick dequeue
        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 4
        assert {
            "key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1
        } in queue.tag_concurrency_limits
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        # pools: one writer per destination, held per op
        assert concurrency.pool_config.default_pool_limit == 1
        assert concurrency.pool_config.pool_granularity.value == "op"
        assert instance.telemetry_enabled is False
        # no DAGSTER_PG_URL: SQLite under DAGSTER_HOME
        assert isinstance(instance.run_storage, SqliteRunStorage)


def test_postgres_variant_names_the_variable_never_its_value() -> None:
    url = f"postgresql://dagster:{PASSWORD}@db.example:5432/dagster"
    text = instance_yaml(env={PG_URL_ENV: url})
    assert PASSWORD not in text and "db.example" not in text
    config = instance_config(env={PG_URL_ENV: url})
    assert config["storage"] == {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
    # the rest is the repo's file unchanged
    base = yaml.safe_load(REPO_DAGSTER_YAML.read_text())
    assert {k: v for k, v in config.items() if k != "storage"} == base
    assert "storage" not in instance_config(env={})
    described = describe_storage({PG_URL_ENV: url})
    assert PASSWORD not in described and "db.example:5432/dagster" in described


def test_the_url_gets_the_driver_dagster_postgres_works_with() -> None:
    rest = f"dagster:{PASSWORD}@db.example:5432/dagster"
    for scheme in ("postgresql", "postgres", "POSTGRESQL", "postgresql+psycopg2"):
        assert dagster_pg_url(f"{scheme}://{rest}") == f"postgresql+psycopg2://{rest}"
    for bad in (f"postgresql+psycopg://{rest}", f"mysql://{rest}", PASSWORD):
        with pytest.raises(ValueError) as refused:
            dagster_pg_url(bad)
        assert PASSWORD not in str(refused.value)
    with pytest.raises(ValueError, match="needs psycopg2"):
        instance_yaml(env={PG_URL_ENV: f"postgresql+asyncpg://{rest}"})
    env = {PG_URL_ENV: f"postgresql://{rest}"}
    prepare_environment(env)
    assert env == {PG_URL_ENV: f"postgresql+psycopg2://{rest}"}
    unset: dict[str, str] = {}
    prepare_environment(unset)
    assert unset == {}


def test_the_command_writes_a_home_and_says_which_url_dagster_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(PG_URL_ENV, f"postgresql://dagster:{PASSWORD}@db.example:5432/dagster")
    assert main([str(tmp_path / "home")]) == 0
    said = capsys.readouterr().out
    assert "postgresql+psycopg2://***@db.example:5432/dagster" in said and PASSWORD not in said
    assert instance_config()["storage"] == yaml.safe_load(
        (tmp_path / "home" / "dagster.yaml").read_text())["storage"]
    monkeypatch.setenv(PG_URL_ENV, f"postgresql+psycopg://dagster:{PASSWORD}@db.example/dagster")
    assert main([str(tmp_path / "other")]) == 2
    assert "needs psycopg2" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_psycopg3_cannot_store_events_the_reason_for_psycopg2(tmp_path: Path) -> None:
    """If this starts failing, dagster-postgres stores events through psycopg 3 (SQLAlchemy 2.1's
    default for `postgresql://`) and `dagster_pg_url` may leave the driver alone."""
    with temporary_database("dagster_psycopg3") as db:
        (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": {
            "postgres_url": db.set(drivername="postgresql+psycopg").render_as_string(False)}}}))
        with (
            dg.DagsterInstance.from_config(str(tmp_path)) as instance,
            pytest.raises(sa.exc.ProgrammingError, match="NOTIFY"),
        ):
            instance.report_runless_asset_event(dg.AssetMaterialization("probe"))


def test_a_base_file_that_sets_storage_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "dagster.yaml"
    base.write_text("storage:\n  sqlite:\n    base_dir: /tmp/x\n")
    with pytest.raises(ValueError, match="leave storage to the environment"):
        instance_yaml(env={}, base=base)


def test_an_edited_repo_file_reaches_an_existing_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))  # restored after the test
    stale = tmp_path / "data" / "dagster_home" / "dagster.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("telemetry:\n  enabled: false\n")  # an old copy of the repo's file
    home = prepare_dagster_home(tmp_path / "data")
    assert os.environ["DAGSTER_HOME"] == str(home) == str(stale.parent)
    assert stale.read_text() == instance_yaml(env={})
    # unchanged content is not rewritten
    before = stale.stat().st_mtime_ns
    write_instance_yaml(home, env={})
    assert stale.stat().st_mtime_ns == before
    # a changed base is
    base = tmp_path / "base.yaml"
    base.write_text("telemetry:\n  enabled: false\nrun_retries:\n  enabled: false\n")
    write_instance_yaml(home, env={}, base=base)
    assert yaml.safe_load(stale.read_text())["run_retries"] == {"enabled": False}


# What `imednet-assets demo` does, in a clean process: prepare the home (DAGSTER_PG_URL set), open
# the instance, register the simulator's study and run `imednet_all_job` for it.
RUN_STUDY_SCRIPT = """
import json, os
from pathlib import Path
import dagster as dg
from imednet_assets.demo import prepare_dagster_home, register_studies
from imednet_assets.instance import describe_storage
from imednet_assets.simulator import SimulatorConfig, SimulatorServer

home = prepare_dagster_home(Path(os.environ["IMEDNET_ASSETS_DATA_DIR"]))
print("storage:", describe_storage())
with SimulatorServer(SimulatorConfig(seed=5, studies=1, subjects=3)) as sim:
    os.environ.update(IMEDNET_BASE_URL=sim.base_url, IMEDNET_API_KEY="k1",
                      IMEDNET_SECURITY_KEY="k2")
    from imednet_assets.definitions import defs

    with dg.DagsterInstance.get() as instance:
        [study] = register_studies(instance)
        result = defs.resolve_job_def("imednet_all_job").execute_in_process(
            partition_key=study, instance=instance)
        print(json.dumps({
            "home": str(home), "study": study, "run_id": result.run_id,
            "success": result.success,
            "materialized": sorted(e.asset_key.to_user_string()
                                   for e in result.get_asset_materialization_events()),
            "storage": type(instance.run_storage).__name__,
        }))
"""


def test_a_study_materialized_on_postgres_storage_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with temporary_database("dagster_instance") as db:
        # a plain postgresql:// URL, as an operator would write it
        pg_url = db.set(drivername="postgresql", password=PASSWORD).render_as_string(
            hide_password=False
        )
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IMEDNET", "DAGSTER", "MONGODB", "SNOWFLAKE", "NEO4J",
                                    "FALKORDB"))}
        env.update(IMEDNET_ASSETS_DATA_DIR=str(tmp_path / "data"), DAGSTER_PG_URL=pg_url)
        proc = subprocess.run([sys.executable, "-c", RUN_STUDY_SCRIPT], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=240, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert PASSWORD not in proc.stdout + proc.stderr
        assert f"storage: PostgreSQL at postgresql+psycopg2://***@{db.host}" in proc.stdout
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["success"] and out["storage"] == "PostgresRunStorage"
        assert {"imednet/records", "duckdb/records_long"} <= set(out["materialized"])
        home = Path(out["home"])
        assert PASSWORD not in (home / "dagster.yaml").read_text()
        # nothing of the run went to SQLite under DAGSTER_HOME
        assert not list(home.rglob("*.db"))

        # a fresh instance from the same config reads the run and its events from PostgreSQL
        monkeypatch.setenv(PG_URL_ENV, dagster_pg_url(pg_url))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_storage, PostgresRunStorage)
            assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
            assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
            assert instance.get_dynamic_partitions("study") == [out["study"]]
            run = instance.get_run_by_id(out["run_id"])
            assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
            assert run.tags["dagster/partition"] == out["study"]
            records = instance.get_records_for_run(
                out["run_id"], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
            ).records
            keys = sorted(r.event_log_entry.asset_materialization.asset_key.to_user_string()
                          for r in records)
            assert keys == out["materialized"]
            latest = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["imednet", "records"]),
                                      asset_partitions=[out["study"]]),
                limit=1,
            ).records
            assert [r.run_id for r in latest] == [out["run_id"]]

        # and the rows are there in the database itself
        engine = sa.create_engine(db, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                stored = conn.execute(
                    sa.text("SELECT count(*) FROM event_logs WHERE run_id = :run "
                            "AND dagster_event_type = 'ASSET_MATERIALIZATION'"),
                    {"run": out["run_id"]},
                ).scalar_one()
        finally:
            engine.dispose()
        assert stored == len(out["materialized"])
