"""The lake freshness check: per study, the age of its last records materialization against the
set age (run config, else the environment, else 26 h); never-refreshed studies are named."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dagster as dg
import pytest

from imednet_assets.defs.checks.freshness import (
    MAX_AGE_ENV,
    RECORDS,
    lake_freshness_job,
    lake_freshness_schedule,
    lake_is_fresh,
)
from imednet_assets.defs.partitions import study_partitions

OP = "imednet__records_lake_is_fresh"


def _evaluate(instance: dg.DagsterInstance, max_age_hours: float | None = None
              ) -> dg.AssetCheckEvaluation:
    job = dg.Definitions(
        assets=[dg.AssetSpec(RECORDS, partitions_def=study_partitions)],
        asset_checks=[lake_is_fresh], jobs=[lake_freshness_job],
    ).resolve_job_def("lake_freshness_job")
    config = {} if max_age_hours is None else {"max_age_hours": max_age_hours}
    result = job.execute_in_process(instance=instance, run_config={"ops": {OP: {"config": config}}})
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_fresh_stale_and_never_refreshed_studies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_AGE_ENV, raising=False)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("study", ["A", "B", "C"])
        for study in ("A", "B"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(RECORDS, partition=study))
        fresh = _evaluate(instance)  # 26 h by default
        assert (fresh.passed, fresh.severity) == (False, dg.AssetCheckSeverity.WARN)
        assert fresh.description == "3 studies, 1 never refreshed: C"
        assert fresh.metadata["max_age_hours"].value == 26.0
        assert fresh.metadata["stale_studies"].value == {}

        time.sleep(1.5)
        stale = _evaluate(instance, max_age_hours=1 / 3600)  # one second
        assert not stale.passed
        assert set(stale.metadata["stale_studies"].value) == {"A", "B"}
        assert stale.description.startswith("3 studies, 2 older than 0.000277778 h: A (")

        instance.report_runless_asset_event(dg.AssetMaterialization(RECORDS, partition="C"))
        monkeypatch.setenv(MAX_AGE_ENV, "1")
        ok = _evaluate(instance)
        assert ok.passed and ok.description == "3 studies, every lake refreshed within 1 h"
        ages = ok.metadata["age_hours_by_study"].value
        assert sorted(ages) == ["A", "B", "C"] and all(0 <= a < 1 for a in ages.values())


def test_the_schedule_asks_one_run_an_hour() -> None:
    hour = datetime(2026, 6, 1, 5, tzinfo=UTC)
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=hour) as context:
        request = lake_freshness_schedule(context)
    assert request.run_key == "freshness:2026-06-01T05"
    assert lake_freshness_schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def time_at(*parts: int):
    from datetime import datetime

    return datetime(*parts, tzinfo=UTC)
