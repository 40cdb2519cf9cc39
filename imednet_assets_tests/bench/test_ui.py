"""The UI benchmark's verdict on the launched work."""

from __future__ import annotations

import dagster as dg

from imednet_assets.bench.ui import unsuccessful_runs
from imednet_assets.webserver import JOB


def test_only_the_launched_jobs_runs_decide_whether_the_work_was_green() -> None:
    # the daemon's hourly freshness schedule can start a run of its own job mid-benchmark
    # (it did on CI at :15); that run, still going, says nothing about the launched work
    with dg.instance_for_test() as instance:
        instance.add_run(dg.DagsterRun(job_name=JOB, run_id="launched",
                                       status=dg.DagsterRunStatus.SUCCESS))
        instance.add_run(dg.DagsterRun(job_name="lake_freshness_job", run_id="scheduled",
                                       status=dg.DagsterRunStatus.STARTED))
        assert unsuccessful_runs(instance) == []
        instance.add_run(dg.DagsterRun(job_name=JOB, run_id="retried",
                                       status=dg.DagsterRunStatus.FAILURE))
        assert unsuccessful_runs(instance) == ["retried: FAILURE"]
