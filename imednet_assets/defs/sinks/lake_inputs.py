"""How every sink reads the lake and becomes one Dagster step: a destination's assets are parts
(`SinkPart`: a name, the lake entities it reads, a plan), and all of them run in one multi-asset
step in the destination's pool, each output written by the destination's IO manager.

One step per destination, not one per table: a run's cost is mostly Dagster's bookkeeping per
step (events, input loads), and one writer per destination is what the pool allows anyway.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from imednet_assets.defs.execution import step_tags
from imednet_assets.defs.ingest.assets import LAKE_IO_MANAGER_KEY
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.pseudonymise import pseudonymised
from imednet_assets.defs.sinks.pseudonyms import pseudonymiser


def lake_key(entity: str) -> dg.AssetKey:
    return dg.AssetKey(["imednet", entity])


def lake_in(entity: str) -> dg.AssetIn:
    """The lake slice of `entity` for the run's study, as a `LakeSlice`."""
    return dg.AssetIn(key=lake_key(entity), input_manager_key=LAKE_IO_MANAGER_KEY)


@dataclass(frozen=True)
class SinkPart:
    """One asset of a destination: `<destination>/<name>`, whose write is
    `plan(study, **{param: lake slice of entity})` for `ins` = {param: lake entity}."""

    name: str
    ins: Mapping[str, str]
    description: str
    plan: Callable[..., Any]
    kinds: Collection[str] | None = None


def sink_multi_asset(
    *, destination: str, parts: Sequence[SinkPart], kinds: Collection[str], io_manager_key: str,
    pool: str,
) -> dg.AssetsDefinition:
    """All of a destination's assets as one study-partitioned step (subsettable: the UI can
    materialize one of them), each output planned per study from the lake slices it needs and
    handed to `io_manager_key`."""
    specs = [
        dg.AssetSpec(
            key=[destination, part.name],
            deps=[lake_key(e) for e in sorted(set(part.ins.values()))],
            description=part.description,
            group_name=destination,
            kinds=set(part.kinds or kinds),
            partitions_def=study_partitions,
            tags={"imednet/layer": "destination"},
        ).with_io_manager_key(io_manager_key)
        for part in parts
    ]

    @dg.multi_asset(
        name=f"{destination}_write",
        specs=specs,
        # the lake slices are deps, read by the step itself: only those the selected assets need
        # (the UI may materialize one asset), and no input-loading events per slice
        required_resource_keys={LAKE_IO_MANAGER_KEY, io_manager_key},
        can_subset=True,
        # a backfill of many studies is one run (one start-up, one step per destination); each
        # IO manager writes the studies one after the other
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=pool,
        op_tags=step_tags(destination),
        description=f"Every {destination} asset of the study, one writer at a time.",
    )
    def _write(context: dg.AssetExecutionContext) -> Any:
        lake = getattr(context.resources, LAKE_IO_MANAGER_KEY)
        studies = list(context.partition_keys)
        chosen = [p for p in parts if dg.AssetKey([destination, p.name])
                  in context.selected_asset_keys]
        # a destination that opted in reads pseudonymised copies, made here for all its assets
        # (a missing key fails the step before anything is read)
        p = pseudonymiser(destination)
        metadata = p.metadata() if p is not None else {}
        try:
            slices = {(entity, study): lake.read_slice(entity, study)
                      for entity in sorted({e for p in chosen for e in p.ins.values()})
                      for study in studies}
        except FileNotFoundError as err:
            raise dg.Failure(description=f"{destination}: {err}") from None
        # the outputs are written while this generator waits at its yield: inside the session
        with pseudonymised(slices, p, lake.read_slice) as slices, \
                getattr(context.resources, io_manager_key).step_session():
            for part in chosen:
                key = dg.AssetKey([destination, part.name])
                writes = {study: part.plan(study, **{param: slices[entity, study]
                                                     for param, entity in part.ins.items()})
                          for study in studies}
                value = writes[studies[0]] if len(studies) == 1 else writes
                yield dg.Output(value, output_name=key.to_python_identifier(),
                                metadata=metadata)

    return _write
