"""The UI benchmark's verdict on the launched work."""

from __future__ import annotations

import dagster as dg

from imednet_assets.bench.ui import unsuccessful_runs
from imednet_assets.webserver import JOB


def test_only_the_launched_runs_decide_whether_the_work_was_green() -> None:
    # the daemon's schedules run beside the launched work: the hourly freshness check started a
    # run on CI at :15 mid-benchmark, and the nightly reconcile runs the same job at 02:00
    with dg.instance_for_test() as instance:
        def run(run_id: str, status: dg.DagsterRunStatus, job: str = JOB, **tags: str) -> None:
            instance.add_run(dg.DagsterRun(job_name=job, run_id=run_id, status=status,
                                           tags=tags))

        run("launched", dg.DagsterRunStatus.SUCCESS)
        run("freshness", dg.DagsterRunStatus.STARTED, job="lake_freshness_job")
        run("reconcile", dg.DagsterRunStatus.STARTED)
        run("b1", dg.DagsterRunStatus.SUCCESS, **{"dagster/backfill": "bf"})
        assert unsuccessful_runs(instance, dg.RunsFilter(run_ids=["launched"])) == []
        backfill = dg.RunsFilter(tags={"dagster/backfill": "bf"})
        assert unsuccessful_runs(instance, backfill) == []
        run("b2", dg.DagsterRunStatus.FAILURE, **{"dagster/backfill": "bf"})
        assert unsuccessful_runs(instance, backfill) == ["b2: FAILURE"]
