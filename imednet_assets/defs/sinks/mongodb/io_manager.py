"""MongoDB sink IO manager: writes a `CollectionWrite` for the run's study partition.

The server is pinged before anything is read or written, so a wrong address or credentials fail
the step with a configuration error and move no data. Every failure becomes a `dg.Failure` whose
description names destination (redacted), collection, study and batch.
The write is incremental when the lake's change logs allow it (`writer.sync_collection`); the
metadata says which (`mode`: skip, apply or rewrite, and `mode_reason`).
"""

from __future__ import annotations

import dagster as dg

from imednet_assets.defs.sinks.changes import APPLY, SKIP
from imednet_assets.defs.sinks.common import DestinationError
from imednet_assets.defs.sinks.mongodb.resources import MongoDestination
from imednet_assets.defs.sinks.mongodb.writer import CollectionWrite, sync_collection


class MongoSinkIOManager(dg.ConfigurableIOManager):
    """Brings one study's documents in one collection to the lake's state; reading back is not
    offered (query MongoDB)."""

    mongodb: MongoDestination

    def handle_output(self, context: dg.OutputContext, obj: CollectionWrite) -> None:
        study = context.partition_key
        if not isinstance(obj, CollectionWrite) or obj.study_key != study:
            raise dg.Failure(
                f"MongoDB sink {context.asset_key.to_user_string()} for study {study}: expected a "
                f"CollectionWrite for that study, got {type(obj).__name__}"
            )
        try:
            with self.mongodb.open() as db:
                plan, stats = sync_collection(db, obj, self.mongodb)
        except DestinationError as err:
            raise dg.Failure(description=str(err)) from None
        changed = {"keys_changed": dg.MetadataValue.json(
            {e: len(k) for e, k in plan.keys.items()})} if plan.action == APPLY else {}
        context.add_output_metadata({
            "dagster/row_count": stats.documents,
            "destination": self.mongodb.address,
            "collection": f"{self.mongodb.database}.{obj.collection}",
            "documents_written": stats.written,
            "documents_inserted": stats.inserted,
            "documents_updated": stats.updated,
            "documents_unchanged": stats.unchanged,
            "documents_deleted": stats.deleted,
            "batches": stats.batches,
            "seconds": dg.MetadataValue.float(round(stats.seconds, 3)),
            "mode": plan.action,
            "mode_reason": plan.reason,
            **changed,
            # asset extras may read the lake: a skipped write reads nothing
            **(obj.extra_metadata() if plan.action != SKIP else {}),
        })  # fmt: skip

    def load_input(self, context: dg.InputContext) -> None:
        raise dg.Failure(
            f"MongoDB sink {context.asset_key.to_user_string()} cannot be read as an input: "
            "query the collection instead"
        )
