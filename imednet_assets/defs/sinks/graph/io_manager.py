"""Graph sink IO manager: runs the asset's `GraphWrite` for the run's study partition.

The transport is opened (reachability and credentials checked) before any data moves; every
failure becomes a `dg.Failure` whose message names the destination (redacted), the study and the
batch, so the partition is not marked materialized and no stack trace is needed to read it.
The write is incremental when the lake's change logs allow it (`StudyWriter.sync`); the metadata
says which (`mode`: skip, apply or rewrite, and `mode_reason`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import APPLY, KeyedPlan
from imednet_assets.defs.sinks.common import DestinationError
from imednet_assets.defs.sinks.graph.model import StudyGraph
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets.defs.sinks.graph.writer import GraphStats, StudyWriter


@dataclass(frozen=True)
class GraphWrite:
    """The study's lake slices the graph is derived from (entity -> slice); `asset_name` names
    the sync state the write keeps in the graph."""

    study_key: str
    slices: Mapping[str, LakeSlice]
    asset_name: str = "study_graph"


def _metadata(stats: GraphStats, destination: str, plan: KeyedPlan,
              node_counts: Mapping[str, int]) -> dict[str, dg.RawMetadataValue]:
    per_label = {k: vars(v) for k, v in stats.nodes.items()}
    per_rel = {k: vars(v) for k, v in stats.rels.items()}
    metadata: dict[str, dg.RawMetadataValue] = {
        "dagster/row_count": sum(node_counts.values()),
        "destination": destination,
        "mode": plan.action,
        "mode_reason": plan.reason,
        "nodes_written": stats.total("nodes", "written"),
        "nodes_created": stats.total("nodes", "created"),
        "nodes_updated": stats.updated("nodes"),
        "nodes_unchanged": stats.total("nodes", "unchanged"),
        "nodes_deleted": stats.total("nodes", "deleted"),
        "relationships_written": stats.total("rels", "written"),
        "relationships_created": stats.total("rels", "created"),
        "relationships_deleted": stats.total("rels", "deleted"),
        "batches": stats.batches,
        "seconds": round(stats.seconds, 3),
        "node_counts": dg.MetadataValue.json(dict(node_counts)),
        "nodes": dg.MetadataValue.json(per_label),
        "relationships": dg.MetadataValue.json(per_rel),
    }
    if plan.action == APPLY:
        metadata["keys_changed"] = dg.MetadataValue.json(
            {e: len(k) for e, k in plan.keys.items()})
    return metadata


class GraphIOManager(dg.ConfigurableIOManager):
    """Writes a `GraphWrite`; loads back the study's node count per label."""

    destination: GraphDestination

    def handle_output(self, context: dg.OutputContext, obj: GraphWrite) -> None:
        study = context.partition_key
        if not isinstance(obj, GraphWrite) or obj.study_key != study:
            raise dg.Failure(
                description=f"graph sink {context.asset_key.to_user_string()} for study {study}: "
                f"expected a GraphWrite for that study, got {type(obj).__name__}")
        transport = self.destination.transport()
        try:
            transport.open()
            writer = StudyWriter(transport, self.destination, log=context.log.info)
            plan, stats = writer.sync(StudyGraph(study, obj.slices), obj.asset_name)
            node_counts = writer.count_nodes(study)
        except DestinationError as err:
            raise dg.Failure(description=str(err)) from None
        finally:
            transport.close()
        context.add_output_metadata(_metadata(stats, transport.destination, plan, node_counts))

    def load_input(self, context: dg.InputContext) -> dict[str, int]:
        study = context.partition_key
        transport = self.destination.transport()
        try:
            transport.open()
            return StudyWriter(transport, self.destination).count_nodes(study)
        except (DestinationError, *transport.errors) as err:
            raise dg.Failure(description=f"graph read for study {study} failed: {err}") from None
        finally:
            transport.close()
