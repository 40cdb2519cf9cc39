"""Study discovery: new studies in the API become `study` partitions and get a first run."""


from typing import Any

import dagster as dg

from imednet_assets.client.sync import list_studies_sync
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
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Adds every study the API lists as a `study` partition and materializes it.",
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
