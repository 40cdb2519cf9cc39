"""How every sink asset reads the lake: one input per lake entity, the check that every slice is
the run's study, the decorator every sink asset shares, and a whole sink asset for the ones that
plan a write from the study's slices as they are."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dagster as dg

from imednet_assets.defs.ingest.assets import LAKE_IO_MANAGER_KEY
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.partitions import study_partitions


def lake_in(entity: str) -> dg.AssetIn:
    """The lake slice of `entity` for the run's study, as a `LakeSlice`."""
    return dg.AssetIn(key=["imednet", entity], input_manager_key=LAKE_IO_MANAGER_KEY)


def study_of(context: dg.AssetExecutionContext, slices: Iterable[LakeSlice]) -> str:
    """The run's study; fails the step when a slice belongs to another study."""
    study = context.partition_key
    for lake in slices:
        if lake.study_key != study:
            raise dg.Failure(
                description=f"lake slice of {lake.entity} is for study {lake.study_key}, "
                f"the run is for study {study}"
            )
    return study


def sink_asset(
    *,
    key: list[str],
    ins: Mapping[str, str],
    group: str,
    kinds: set[str],
    io_manager_key: str,
    pool: str,
    description: str,
) -> Callable[..., dg.AssetsDefinition]:
    """The decorator of a study-partitioned sink asset; `ins` maps parameter name -> lake entity.
    Its output goes to the destination's IO manager, its step runs in the destination's pool."""
    return dg.asset(
        key=key,
        ins={param: lake_in(entity) for param, entity in ins.items()},
        partitions_def=study_partitions,
        group_name=group,
        kinds=kinds,
        io_manager_key=io_manager_key,
        pool=pool,
        description=description,
    )


def study_sink_asset(
    *,
    key: list[str],
    entities: Iterable[str],
    group: str,
    kinds: set[str],
    io_manager_key: str,
    pool: str,
    description: str,
    plan: Callable[[str, dict[str, LakeSlice]], Any],
) -> dg.AssetsDefinition:
    """A study-partitioned sink asset whose output is `plan(study, {entity: slice})`: the write
    its IO manager carries out, in the destination's own pool."""

    @sink_asset(
        key=key,
        ins={entity: entity for entity in entities},
        group=group,
        kinds=kinds,
        io_manager_key=io_manager_key,
        pool=pool,
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, **slices: LakeSlice) -> Any:
        return plan(study_of(context, slices.values()), slices)

    return _asset
