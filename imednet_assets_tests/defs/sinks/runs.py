"""Materializing one destination's sink assets for one study, as Dagster runs them: the study
partition registered, every lake entity an upstream spec read through the lake IO manager."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from imednet_assets.defs.ingest.assets import ENTITIES
from imednet_assets.defs.partitions import study_partitions


def materialize_study(
    instance: dg.DagsterInstance,
    study: str,
    assets: Sequence[dg.AssetsDefinition],
    resources: Mapping[str, Any],
    *,
    raise_on_error: bool = True,
    selection: Sequence[str | dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize `assets` (or the `selection` of them) for `study` with `resources`."""
    if study not in instance.get_dynamic_partitions("study"):
        instance.add_dynamic_partitions("study", [study])
    upstream = [dg.AssetSpec(["imednet", e], partitions_def=study_partitions) for e in ENTITIES]
    return dg.materialize(
        [*upstream, *assets],
        selection=list(selection) if selection else [k for a in assets for k in a.keys],
        partition_key=study,
        instance=instance,
        resources=dict(resources),
        raise_on_error=raise_on_error,
    )
