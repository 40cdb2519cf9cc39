"""Sensors: new studies in the API become `study` partitions and get a first run; studies that
changed since the lake's watermark get an incremental run of what changed."""

import bisect
from typing import Any

import dagster as dg

from imednet_assets.client.sync import list_studies_sync
from imednet_assets.defs.automation.changes import REQUESTS_PER_STUDY, probe_study
from imednet_assets.defs.automation.selection import run_selection
from imednet_assets.defs.ingest.assets import WATERMARKS
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.modes import INCREMENTAL, TRIGGER_TAG, changed_rows_tags, mode_tags
from imednet_assets.defs.partitions import STUDY_PARTITIONS_NAME, study_partitions
from imednet_assets.defs.resources import ImednetResource

ALL_JOB_NAME = "imednet_all_job"
INVALID_KEY_PARTS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")  # Dagster refuses these


def _study_key(study: Any) -> str:
    """A study from the client's list (dict in API or snake case, or an object) -> its key."""
    if isinstance(study, dict):
        return str(study.get("studyKey") or study.get("study_key") or "")
    return str(getattr(study, "study_key", None) or getattr(study, "studyKey", ""))


@dg.sensor(
    name="study_discovery_sensor",
    job_name=ALL_JOB_NAME,
    minimum_interval_seconds=300,
    # on: a new deployment should find its studies by itself, and a tick costs one request
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes: adds every study the API lists as a `study` partition and "
    "launches its first (full) run. Costs one study-list request per tick.",
)
def study_discovery_sensor(
    context: dg.SensorEvaluationContext, imednet: ImednetResource
) -> dg.SensorResult | dg.SkipReason:
    keys = sorted({_study_key(s) for s in list_studies_sync(imednet.settings())} - {""})
    usable = [k for k in keys if not any(part in k for part in INVALID_KEY_PARTS)]
    for key in sorted(set(keys) - set(usable)):
        context.log.warning(f"study key {key!r} cannot be a Dagster partition key; skipped")
    known = set(context.instance.get_dynamic_partitions(STUDY_PARTITIONS_NAME))
    new = [k for k in usable if k not in known]
    if not new:
        return dg.SkipReason(f"no new studies ({len(usable)} listed, all known)")
    context.log.info(f"new studies: {new}")
    return dg.SensorResult(
        dynamic_partitions_requests=[study_partitions.build_add_request(new)],
        # run_key: a re-evaluated tick never launches a study's first run twice
        run_requests=[dg.RunRequest(partition_key=k, run_key=f"study-added:{k}") for k in new],
    )


@dg.sensor(
    name="study_change_sensor",
    job_name=ALL_JOB_NAME,
    minimum_interval_seconds=60,
    # off: it spends up to `probe_budget` requests a minute of a rate-limited API; turn it on
    # once the studies have their first run and the budget suits the account
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Every minute: asks the API, for every study in turn, whether anything changed "
    "since the lake's watermark and launches an incremental run for each study that changed, "
    "of the entities that changed, what is downstream of them and any asset left behind by an "
    "earlier run. Costs one page-of-one request per entity (10 per study), at most "
    "`probe_budget` (default 100) per tick; the other studies wait for the next ticks. Off by "
    "default.",
)
def study_change_sensor(
    context: dg.SensorEvaluationContext, imednet: ImednetResource,
    lake_io_manager: dg.ResourceParam[LakeIOManager],
) -> dg.SensorResult | dg.SkipReason:
    studies = sorted(context.instance.get_dynamic_partitions(STUDY_PARTITIONS_NAME))
    if not studies:
        return dg.SkipReason("no study partitions yet (the discovery sensor adds them)")
    per_tick = max(1, min(len(studies), imednet.probe_budget // REQUESTS_PER_STUDY))
    # the cursor names the last study probed, so every study gets its turn across ticks
    start = bisect.bisect_right(studies, context.cursor or "") % len(studies)
    turn = [studies[(start + i) % len(studies)] for i in range(per_tick)]
    settings = imednet.settings()
    repository = context.repository_def
    if repository is None:
        raise dg.DagsterInvariantViolationError(
            "study_change_sensor needs its definitions to select what a run materializes")
    job = repository.get_job(ALL_JOB_NAME)
    job_keys = job.asset_layer.selected_asset_keys
    requests, quiet = [], []
    for study in turn:
        probes = probe_study(settings, lake_io_manager, study, imednet.incremental_lag_s)
        changed = [p.entity for p in probes if p.changed]
        if not changed:
            quiet.append(study)
            continue
        mark = max((p.api_newest or p.lake_mark or "" for p in probes), default="")
        selection = run_selection(context.instance, job, study, changed)
        context.log.info(f"study {study}: changes in {', '.join(changed)}; "
                         f"{len(selection.assets)} of {len(job_keys)} assets to materialize")
        requests.append(dg.RunRequest(
            partition_key=study,
            # one run per study and newest change: a re-evaluated tick never launches it twice
            run_key=f"{study}:{mark}",
            tags={**mode_tags(INCREMENTAL), TRIGGER_TAG: "study_change_sensor",
                  # the rows in the window the run reads again (the others are read whole)
                  **changed_rows_tags({p.entity: p.api_rows for p in probes
                                       if p.changed and p.entity in WATERMARKS})},
            asset_selection=selection.assets,
            asset_check_keys=selection.checks,
        ))
    cursor = turn[-1]
    if not requests:
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"no changes in {len(quiet)} studies probed ({len(turn) * REQUESTS_PER_STUDY} "
            "requests)"), cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
