"""MongoDB sink IO manager: writes a `CollectionWrite` for the run's study partition.

The server is pinged before anything is read or written, so a wrong address or credentials fail
the step with a configuration error and move no data. Every failure becomes a `dg.Failure` whose
description names destination (redacted), collection, study and batch.
The write is incremental when the lake's change logs allow it (`writer.sync_collection`); the
metadata says which (`mode`: skip, apply or rewrite, and `mode_reason`).
"""

from __future__ import annotations

from typing import ClassVar

import dagster as dg

from imednet_assets.defs.sinks.changes import SKIP
from imednet_assets.defs.sinks.destination import DestinationIOManager, WriteReport
from imednet_assets.defs.sinks.mongodb.resources import MongoDestination
from imednet_assets.defs.sinks.mongodb.writer import CollectionWrite, sync_collection


class MongoSinkIOManager(DestinationIOManager):
    """Brings one study's documents in one collection to the lake's state; reading back is not
    offered (query MongoDB)."""

    label: ClassVar[str] = "MongoDB sink"
    write_type: ClassVar[type] = CollectionWrite

    mongodb: MongoDestination

    def write_output(self, context: dg.OutputContext, obj: CollectionWrite) -> WriteReport:
        with self.mongodb.open() as db:
            plan, stats = sync_collection(db, obj, self.mongodb)
        return WriteReport(
            {obj.collection: stats.documents},
            plan,
            inserted=stats.inserted,
            updated=stats.updated,
            deleted=stats.deleted,
            extra={
                "destination": self.mongodb.address,
                "collection": f"{self.mongodb.database}.{obj.collection}",
                "documents_written": stats.written,
                "documents_inserted": stats.inserted,
                "documents_updated": stats.updated,
                "documents_unchanged": stats.unchanged,
                "documents_deleted": stats.deleted,
                "batches": stats.batches,
                "seconds": dg.MetadataValue.float(round(stats.seconds, 3)),
                # asset extras may read the lake: a skipped write reads nothing
                **(obj.extra_metadata() if plan.action != SKIP else {}),
            },
        )
