"""Schedules: the nightly reconcile of every study against the API."""

import dagster as dg

from imednet_assets.defs.automation.sensors import ALL_JOB_NAME
from imednet_assets.defs.modes import INCREMENTAL, TRIGGER_TAG, mode_tags
from imednet_assets.defs.partitions import STUDY_PARTITIONS_NAME


@dg.schedule(
    name="study_reconcile_schedule",
    cron_schedule="0 2 * * *",
    job_name=ALL_JOB_NAME,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Nightly, every study: an incremental run, which then compares each entity's row "
    "count with the API (purged records are invisible to a date filter) and turns into a full "
    "refresh of the study where they disagree. Costs per study one filtered read and one count "
    "per entity (10 small requests when nothing changed).",
)
def study_reconcile_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    night = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [
        dg.RunRequest(
            partition_key=study,
            run_key=f"reconcile:{study}:{night}",
            tags={**mode_tags(INCREMENTAL), TRIGGER_TAG: "study_reconcile_schedule"},
        )
        for study in sorted(context.instance.get_dynamic_partitions(STUDY_PARTITIONS_NAME))
    ]
