"""What a run launched for a study's changes materializes: the lake slices of the entities that
changed, everything downstream of them, and every asset that is behind.

Unchanged assets are left out, so their latest materialization stays the one that last changed
their data, and a run touching 5 of 50 assets pays a tenth of Dagster's bookkeeping. An asset is
behind when it has never been materialized for the study, or an upstream asset was materialized
after it (its write failed, or its destination was configured later): it is selected as well
and catches up from its own applied sequence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg

from imednet_assets.defs.ingest.assets import asset_key


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey, study: str) -> int | None:
    """The storage id of the study's latest materialization of `key` (ids only grow)."""
    return instance.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION, {study}).get(study)


@dataclass(frozen=True)
class RunSelection:
    """The assets and asset checks of one run."""

    assets: list[dg.AssetKey]
    checks: list[dg.AssetCheckKey]


def run_selection(instance: dg.DagsterInstance, job: dg.JobDefinition, study: str,
                  changed: Iterable[str]) -> RunSelection:
    """What a run of `job` for `study` materializes after `changed` entities changed in the
    API; empty when nothing changed and nothing is behind."""
    graph = job.asset_layer.asset_graph
    job_keys = job.asset_layer.selected_asset_keys
    selected = {asset_key(entity) for entity in changed} & set(job_keys)
    latest: dict[dg.AssetKey, int | None] = {}

    def latest_of(key: dg.AssetKey) -> int | None:
        if key not in latest:
            latest[key] = _latest(instance, key, study)
        return latest[key]

    for key in graph.toposorted_asset_keys:  # parents before children
        if key not in job_keys or key in selected:
            continue
        parents = graph.get(key).parent_keys & job_keys
        if not parents:
            continue  # an ingest asset: selected when the API says it changed
        mine = latest_of(key)
        if (parents & selected or mine is None
                or any((latest_of(p) or 0) > mine for p in parents)):
            selected.add(key)
    return RunSelection(
        assets=sorted(selected, key=lambda k: k.path),
        # the job's own checks of those assets (a check kept out of the job stays out)
        checks=sorted((c for c in graph.asset_check_keys if c.asset_key in selected),
                      key=lambda c: (c.asset_key.path, c.name)),
    )
