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
from typing import Any, ClassVar

import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.common import DestinationError
from imednet_assets.defs.sinks.destination import DestinationIOManager, WriteReport
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


def _metadata(stats: GraphStats, destination: str) -> dict[str, Any]:
    """The graph's own metadata: nodes and relationships written, per label and type."""
    return {
        "destination": destination,
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
        "nodes": dg.MetadataValue.json({k: vars(v) for k, v in stats.nodes.items()}),
        "relationships": dg.MetadataValue.json({k: vars(v) for k, v in stats.rels.items()}),
    }


class GraphIOManager(DestinationIOManager):
    """Writes a `GraphWrite`; loads back the study's node count per label."""

    label: ClassVar[str] = "graph sink"
    write_type: ClassVar[type] = GraphWrite

    destination: GraphDestination

    def write_output(self, context: dg.OutputContext, obj: GraphWrite) -> WriteReport:
        transport = self.destination.transport()
        try:
            transport.open()
            writer = StudyWriter(transport, self.destination, log=context.log.info)
            plan, stats = writer.sync(StudyGraph(obj.study_key, obj.slices), obj.asset_name)
            node_counts = writer.count_nodes(obj.study_key)
        finally:
            transport.close()
        return WriteReport(node_counts, plan, extra={
            **_metadata(stats, transport.destination),
            "node_counts": dg.MetadataValue.json(dict(node_counts))})

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
