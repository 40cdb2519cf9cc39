"""Running one destination's `every_record_once` check for one study, as Dagster runs it: either
right after its sink assets (one run) or alone, on the destination as it is (after tampering)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from imednet_assets.defs.partitions import study_partitions
from imednet_assets_tests.defs.sinks.duckdb.conftest import ENTITIES


def run_check(
    instance: dg.DagsterInstance,
    study: str,
    check: dg.AssetChecksDefinition,
    resources: Mapping[str, Any],
    assets: Sequence[dg.AssetsDefinition],
    *,
    materialize: bool = False,
) -> dg.AssetCheckEvaluation:
    """The check's evaluation for `study`, after materializing `assets` in the same run when
    `materialize` (else only the check runs, on the destination as it is). The run must succeed:
    a failing check is an evaluation, not a failed step."""
    if study not in instance.get_dynamic_partitions("study"):
        instance.add_dynamic_partitions("study", [study])
    upstream = [dg.AssetSpec(["imednet", e], partitions_def=study_partitions) for e in ENTITIES]
    keys = {k for a in assets for k in a.keys}
    job = dg.define_asset_job("check_run", selection=list(keys),
                              partitions_def=study_partitions)
    defs = dg.Definitions(assets=[*upstream, *assets], asset_checks=[check], jobs=[job],
                          resources=resources)
    job = defs.resolve_job_def("check_run").get_subset(
        asset_selection=keys if materialize else set(),
        asset_check_selection=set(check.check_keys),
    )
    result = job.execute_in_process(partition_key=study, instance=instance)
    assert result.success
    assert len(result.get_asset_materialization_events()) == (len(keys) if materialize else 0)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.partition == study
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    return evaluation


def meta(evaluation: dg.AssetCheckEvaluation) -> dict[str, Any]:
    return {k: v.value for k, v in evaluation.metadata.items()}


def shown(evaluation: dg.AssetCheckEvaluation) -> str:
    """Everything the UI shows of an evaluation (to look for secrets in)."""
    return evaluation.description + json.dumps(meta(evaluation), default=str)
