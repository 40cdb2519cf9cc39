"""A backfill of several studies is one run (single-run backfill policy): the lake, DuckDB and
the bundles then hold exactly what one run per study writes, every partition is materialized,
and the checks evaluate every study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from imednet_assets.defs.checks.definitions import asset_checks
from imednet_assets.defs.modes import FULL
from imednet_assets_tests.convergence.walk import FILE_TARGETS, Walk
from imednet_assets_tests.defs.ingest.conftest import imednet_resource

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _resources(ns: Path) -> dict[str, Any]:
    resources: dict[str, Any] = {"imednet": imednet_resource()}
    for target in FILE_TARGETS:
        resources.update(target.resources(ns))
    return resources


def test_every_asset_declares_a_single_run_backfill_policy() -> None:
    from imednet_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    policies = {graph.get(key).backfill_policy for key in graph.get_all_asset_keys()
                if graph.get(key).is_materializable}
    assert policies == {dg.BackfillPolicy.single_run()}


def test_one_run_over_every_study_writes_what_one_run_per_study_writes(sim, tmp_path: Path):
    studies = sorted(sim.stats())
    assert len(studies) >= 2
    walk = Walk(sim, FILE_TARGETS, tmp_path)
    walk.instance.add_dynamic_partitions("study", studies)
    for study in studies:
        walk.run(tmp_path / "per-study", study, FULL)

    job = dg.Definitions(
        assets=[a for t in FILE_TARGETS for a in t.assets], asset_checks=asset_checks,
        resources=_resources(tmp_path / "one-run"),
    ).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=walk.instance, tags={RANGE_START: studies[0], RANGE_END: studies[-1]})

    assert result.success
    # every asset is materialized for every study, by this one run
    keys = {k for t in FILE_TARGETS for a in t.assets for k in a.keys}
    done = {(e.asset_key, e.partition) for e in result.get_asset_materialization_events()}
    assert done == {(k, s) for k in keys for s in studies}
    # the checks ran over every study and passed (one evaluation per check for the run)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len({k for c in asset_checks for k in c.check_keys})
    assert all(e.passed for e in evaluations)
    assert {e.metadata["studies"].value for e in evaluations} == {len(studies)}
    for study in studies:
        assert walk.dumps(tmp_path / "one-run", study) == walk.dumps(
            tmp_path / "per-study", study)
