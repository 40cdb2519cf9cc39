"""Freshness: a warning when a study's lake has not been refreshed for longer than a set age.

"Refreshed" is the last successful materialization of the study's `imednet/records` partition:
every run that reads the study's records records one, incremental runs with nothing new
included. The change sensor's runs read the records only when they changed, but the nightly
reconcile reads every entity of every study, so a quiet study is fresh as long as its nightly
runs succeed. The check is evaluated for every study at once by the hourly
`lake_freshness_schedule` (no API request), and shows on the asset page of `imednet/records`
with each study's age.
"""


import os
import time

import dagster as dg

from imednet_assets.defs.checks._support import WARN, result
from imednet_assets.defs.execution import step_tags
from imednet_assets.defs.partitions import STUDY_PARTITIONS_NAME

MAX_AGE_ENV = "IMEDNET_ASSETS_MAX_LAKE_AGE_HOURS"
#: the nightly reconcile plus two hours of slack
DEFAULT_MAX_AGE_HOURS = 26.0
RECORDS = dg.AssetKey(["imednet", "records"])
CHECK_NAME = "lake_is_fresh"


class FreshnessConfig(dg.Config):
    max_age_hours: float | None = None
    """Oldest acceptable lake, in hours; unset: `IMEDNET_ASSETS_MAX_LAKE_AGE_HOURS`, else 26."""

    def limit_hours(self) -> float:
        if self.max_age_hours is not None:
            return self.max_age_hours
        return float(os.environ.get(MAX_AGE_ENV) or DEFAULT_MAX_AGE_HOURS)


def lake_ages_hours(instance: dg.DagsterInstance, studies: list[str],
                    now: float) -> dict[str, float | None]:
    """Hours since each study's records were last materialized (None: never)."""
    ages: dict[str, float | None] = {}
    for study in studies:
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=RECORDS, asset_partitions=[study]), limit=1).records
        ages[study] = (now - found[0].timestamp) / 3600 if found else None
    return ages


@dg.asset_check(
    asset=RECORDS,
    name=CHECK_NAME,
    blocking=False,
    op_tags=step_tags(),
    description="WARN when a study's lake is older than the set age (run config "
    f"`max_age_hours`, else ${MAX_AGE_ENV}, else {DEFAULT_MAX_AGE_HOURS:g} h): no successful "
    "run has read its records from the API since. Evaluated hourly for every study.",
)
def lake_is_fresh(context: dg.AssetCheckExecutionContext,
                  config: FreshnessConfig) -> dg.AssetCheckResult:
    limit = config.limit_hours()
    studies = sorted(context.instance.get_dynamic_partitions(STUDY_PARTITIONS_NAME))
    ages = lake_ages_hours(context.instance, studies, time.time())
    never = [s for s, age in ages.items() if age is None]
    stale = {s: round(age, 1) for s, age in ages.items() if age is not None and age > limit}
    problems = []
    if stale:
        problems.append(f"{len(stale)} older than {limit:g} h: "
                        + ", ".join(f"{s} ({a:g} h)" for s, a in sorted(stale.items())[:10]))
    if never:
        problems.append(f"{len(never)} never refreshed: {', '.join(never[:10])}")
    return result(
        not problems, WARN,
        f"{len(studies)} studies, " + ("; ".join(problems) if problems else
                                       f"every lake refreshed within {limit:g} h"),
        max_age_hours=limit, stale_studies=stale, never_refreshed=never,
        age_hours_by_study={s: None if a is None else round(a, 2) for s, a in ages.items()},
    )


lake_freshness_job = dg.define_asset_job(
    name="lake_freshness_job",
    selection=dg.AssetSelection.checks(lake_is_fresh),
    description="Evaluates lake_is_fresh for every study (reads the instance only).",
)


@dg.schedule(
    name="lake_freshness_schedule",
    cron_schedule="15 * * * *",
    job=lake_freshness_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: warns on imednet/records for every study whose lake is older than the "
    "set age. Costs no API request (it reads Dagster's own records).",
)
def lake_freshness_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"freshness:{context.scheduled_execution_time:%Y-%m-%dT%H}")
