"""Replays one study into one collection: the end state is exactly the study's documents.

Upsert mode (default): indexes first; the study's `_id -> content hash` pairs are read once; each
batch sends only new documents (`InsertOne`) and changed ones (`ReplaceOne(upsert=True)`) in one
unordered `bulk_write` (a retry upserts the whole batch, so it is harmless); then the study's
documents not written by this replay are deleted. Unchanged documents are not touched, so a
replay without change leaves the collection byte-identical (`exported_at` included) and reports
them as unchanged.

Insert mode (`upsert=False`): the study's documents are deleted, then inserted with `InsertOne`
(no multi-document transaction exists to make that atomic; a failed run leaves the study partial
until the partition is materialized again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import InsertOne, ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError

from imednet_assets.defs.sinks.common import DestinationError, error_detail, with_retries
from imednet_assets.defs.sinks.mongodb.documents import (
    EXPORTED_AT,
    HASH_FIELD,
    ISO_TIMESTAMP,
    content_hash,
)
from imednet_assets.defs.sinks.mongodb.resources import MongoDestination
from imednet_assets.handoff import prefetch

STUDY_FIELD = "study_key"
DUPLICATE_KEY = 11000
# Network errors and "no server": the batch is sent again. Anything else is a real failure.
TRANSIENT = (ConnectionFailure,)
PREFETCH_THREAD = "mongodb-prefetch"


@dataclass(frozen=True)
class CollectionWrite:
    """What one asset writes for one study: its documents, batch by batch, into `collection`.

    `batches(size)` yields lists of at most `size` documents (read lazily from the lake);
    `total` is how many there will be (to name "batch 3 of 7").
    """

    asset_name: str
    study_key: str
    collection: str
    indexes: tuple[str, ...]
    total: int
    batches: Callable[[int], Iterator[list[dict[str, Any]]]]
    extra_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteStats:
    documents: int = 0  # the study's documents in the collection after the write
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    batches: int = 0
    seconds: float = 0.0

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def _after_batch(collection: str, batch: int) -> None:
    """Seam after each batch is written (tests stop the server here); does nothing."""


def now_iso() -> str:
    return datetime.now(UTC).strftime(ISO_TIMESTAMP)


class _Writer:
    """One replay of one plan; `where` names it in every error."""

    def __init__(self, db: Database, plan: CollectionWrite, dest: MongoDestination) -> None:
        self.plan = plan
        self.dest = dest
        self.coll: Collection = db[plan.collection]
        self.n_batches = max(1, -(-plan.total // dest.batch_size))
        self.where = f"{dest.describe()}, collection {plan.collection}: study {plan.study_key}"

    def run(self, retry: Callable[[Callable[[], Any], str], Any], exported_at: str) -> WriteStats:
        stats = WriteStats()
        for name in self.plan.indexes:
            retry(lambda name=name: self.coll.create_index(name), "index creation")
        if self.dest.upsert:
            existing: dict[str, str | None] = retry(self._existing, "reading existing ids")
        else:
            stats.deleted = retry(self._delete_study, "deleting the study's documents")
            existing = {}
        seen: set[str] = set()
        # the next batch is built from the lake while the server writes this one
        batches = prefetch(self.plan.batches(self.dest.batch_size), name=PREFETCH_THREAD)
        with closing(batches):
            for number, docs in enumerate(batches, start=1):
                new, changed = self._split(docs, existing, seen, stats, exported_at)
                if new or changed:
                    what = f"batch {number} of {max(number, self.n_batches)}"
                    retry(self._sender(new, changed), what)
                    stats.batches += 1
                _after_batch(self.plan.collection, number)
        stale = [doc_id for doc_id in existing if doc_id not in seen]
        for start in range(0, len(stale), self.dest.batch_size):
            chunk = stale[start : start + self.dest.batch_size]
            stats.deleted += retry(
                lambda chunk=chunk: self.coll.delete_many({"_id": {"$in": chunk}}).deleted_count,
                "deleting documents gone from the source",
            )
        stats.documents = len(seen)
        return stats

    def _existing(self) -> dict[str, str | None]:
        cursor = self.coll.find({STUDY_FIELD: self.plan.study_key}, {HASH_FIELD: 1})
        return {doc["_id"]: doc.get(HASH_FIELD) for doc in cursor.batch_size(10_000)}

    def _delete_study(self) -> int:
        return self.coll.delete_many({STUDY_FIELD: self.plan.study_key}).deleted_count

    def _split(self, docs: list[dict[str, Any]], existing: dict[str, str | None], seen: set[str],
               stats: WriteStats, exported_at: str) -> tuple[list[dict], list[dict]]:
        """(new documents, changed documents) of a batch, stamped; unchanged ones are counted."""
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for doc in docs:
            doc_id = doc["_id"]
            if doc_id in seen:
                raise DestinationError(f"{self.where}: document {doc_id!r} comes twice")
            seen.add(doc_id)
            digest = content_hash(doc)
            old = existing.get(doc_id, False)
            if old == digest:
                stats.unchanged += 1
                continue
            doc[EXPORTED_AT] = exported_at
            doc[HASH_FIELD] = digest
            (new if old is False else changed).append(doc)
        stats.inserted += len(new)
        stats.updated += len(changed)
        return new, changed

    def _sender(self, new: list[dict], changed: list[dict]) -> Callable[[], None]:
        """One unordered bulk_write: inserts for documents the study did not have (cheaper than
        upserts), `ReplaceOne(upsert=True)` for the rest and for anything in doubt."""
        attempts = 0

        def upsert(doc: dict[str, Any]) -> ReplaceOne:
            return ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)

        def send() -> None:
            nonlocal attempts
            attempts += 1
            docs = new + changed
            if attempts == 1:
                ops: list[Any] = [InsertOne(d) for d in new] + [upsert(d) for d in changed]
            else:  # an earlier attempt may have landed part of the batch
                ops = [upsert(d) for d in docs]
            try:
                self.coll.bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if (exc.details.get("writeConcernErrors") or not errors
                        or any(e.get("code") != DUPLICATE_KEY for e in errors)):
                    raise
                # inserted meanwhile by someone else: replace those, they are ours to write
                self.coll.bulk_write([upsert(docs[e["index"]]) for e in errors], ordered=False)

        return send


def write_collection(db: Database, plan: CollectionWrite, dest: MongoDestination,
                     exported_at: str | None = None) -> WriteStats:
    """Replay `plan` (see the module doc); a batch failing after the retries raises
    `DestinationError` naming destination, collection, study and batch."""
    writer = _Writer(db, plan, dest)
    secrets = dest.secrets()

    def retry(action: Callable[[], Any], what: str) -> Any:
        try:
            return with_retries(action, settings=dest, transient=TRANSIENT,
                                what=f"{writer.where}, {what}", secrets=secrets)
        except PyMongoError as exc:
            detail = error_detail(exc, secrets, 500)
            raise DestinationError(f"{writer.where}, {what} failed: {detail}") from None

    started = time.perf_counter()
    stats = writer.run(retry, exported_at or now_iso())
    stats.seconds = time.perf_counter() - started
    return stats
