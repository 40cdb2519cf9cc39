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

Incremental (`sync_collection`): the tokens of the lake slices a collection was built from are
kept per asset and study in `sync_state` (`_id = "<asset>/<study>"`), written after the
documents, with the study's document count (a skip or an apply derives its count from it; an
apply unsets it first, so one that dies half way makes the next run count). The lake's change
logs then decide: skip (nothing read, nothing written), apply (only the documents of the
changed keys are rebuilt and upserted, those the keys no longer give are deleted) or rewrite
(the replay above). Without multi-document transactions the state cannot
commit with the documents, so it is stored last and removed before a rewrite: a crash leaves
an older state (or none), and the next run applies the same keys again (upserts by `_id` make
that harmless) or rewrites.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import InsertOne, ReplaceOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.changes import APPLY, SKIP, KeyedPlan, plan_keyed
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
SYNC_STATE_COLLECTION = "sync_state"

#: (changed keys per lake entity) -> filters selecting the study's documents that hold them now
Selector = Callable[[Mapping[str, frozenset[Any]]], Iterable[dict[str, Any]]]
#: (changed keys, ids of the documents found by the selector, batch size) -> the documents to
#: write for them, in batches; a found id that is not among them is deleted
Builder = Callable[[Mapping[str, frozenset[Any]], frozenset[str], int],
                   Iterator[list[dict[str, Any]]]]


@dataclass(frozen=True)
class KeyedDocs:
    """How an incremental apply rebuilds only the documents that changed lake keys touch."""

    entities: tuple[str, ...]
    """Lake entities whose changed keys can be applied (a change of any other input: rewrite)."""
    select: Selector
    build: Builder


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
    extra_metadata: Callable[[], dict[str, Any]] = dict
    """Asset-specific metadata, computed only when the write moved data (it may read the lake)."""
    slices: Mapping[str, LakeSlice] = field(default_factory=dict)
    """The lake slices the documents come from: their change logs decide skip/apply/rewrite."""
    keyed: KeyedDocs | None = None


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
        stats.deleted += self._delete_ids(retry, stale)
        stats.documents = len(seen)
        return stats

    def apply(self, retry: Callable[[Callable[[], Any], str], Any], exported_at: str,
              keys: Mapping[str, frozenset[Any]], documents: int | None = None) -> WriteStats:
        """Rebuild and upsert only the documents the changed `keys` touch; delete those of them
        the lake no longer gives. Hashes are compared as in a replay, so a key that changed in
        the lake without changing its document writes nothing. `documents`: the study's count
        before, when the sync state knows it (else the documents are counted)."""
        keyed = self.plan.keyed
        if keyed is None:
            raise DestinationError(f"{self.where}: this collection cannot be applied by key")
        stats = WriteStats()
        for name in self.plan.indexes:
            retry(lambda name=name: self.coll.create_index(name), "index creation")
        existing: dict[str, str | None] = {}
        for query in keyed.select(keys):
            found = retry(lambda query=query: self._hashes(query), "reading the changed documents")
            existing.update(found)
        seen: set[str] = set()
        size = self.dest.batch_size
        for number, docs in enumerate(keyed.build(keys, frozenset(existing), size), start=1):
            # documents the selector did not find may still exist (a visit moved into a
            # subject): their hashes tell unchanged from changed, and insert from replace
            unknown = [d["_id"] for d in docs if d["_id"] not in existing]
            if unknown:
                existing.update(retry(lambda ids=unknown: self._hashes({"_id": {"$in": ids}}),
                                      "reading the changed documents"))
            new, changed = self._split(docs, existing, seen, stats, exported_at)
            if new or changed:
                retry(self._sender(new, changed), f"changed documents batch {number}")
                stats.batches += 1
            _after_batch(self.plan.collection, number)
        stats.deleted = self._delete_ids(retry, [i for i in existing if i not in seen])
        # inserts are documents the study did not hold (checked by id above)
        stats.documents = (documents + stats.inserted - stats.deleted if documents is not None
                           else retry(self.count, "counting the study's documents"))
        return stats

    def count(self) -> int:
        return self.coll.count_documents({STUDY_FIELD: self.plan.study_key})

    def _delete_ids(self, retry: Callable[[Callable[[], Any], str], Any], ids: list[str]) -> int:
        deleted = 0
        for start in range(0, len(ids), self.dest.batch_size):
            chunk = ids[start : start + self.dest.batch_size]
            deleted += retry(
                lambda chunk=chunk: self.coll.delete_many({"_id": {"$in": chunk}}).deleted_count,
                "deleting documents gone from the source",
            )
        return deleted

    def _existing(self) -> dict[str, str | None]:
        return self._hashes({STUDY_FIELD: self.plan.study_key})

    def _hashes(self, query: dict[str, Any]) -> dict[str, str | None]:
        """`_id -> content hash` of the documents matching `query` (always within the study)."""
        cursor = self.coll.find({**query, STUDY_FIELD: self.plan.study_key}, {HASH_FIELD: 1})
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


def _retrier(writer: _Writer, dest: MongoDestination) -> Callable[[Callable[[], Any], str], Any]:
    """`retry(action, what)`: transient errors retried, any failure a `DestinationError` naming
    destination, collection, study and `what` (secrets redacted)."""
    secrets = dest.secrets()

    def retry(action: Callable[[], Any], what: str) -> Any:
        try:
            return with_retries(action, settings=dest, transient=TRANSIENT,
                                what=f"{writer.where}, {what}", secrets=secrets)
        except PyMongoError as exc:
            detail = error_detail(exc, secrets, 500)
            raise DestinationError(f"{writer.where}, {what} failed: {detail}") from None

    return retry


def write_collection(db: Database, plan: CollectionWrite, dest: MongoDestination,
                     exported_at: str | None = None) -> WriteStats:
    """Replay `plan` (see the module doc); a batch failing after the retries raises
    `DestinationError` naming destination, collection, study and batch."""
    writer = _Writer(db, plan, dest)
    started = time.perf_counter()
    stats = writer.run(_retrier(writer, dest), exported_at or now_iso())
    stats.seconds = time.perf_counter() - started
    return stats


def sync_state_id(asset_name: str, study_key: str) -> str:
    return f"{asset_name}/{study_key}"


def _read_state(db: Database, asset_name: str, study_key: str) -> tuple[dict[str, str],
                                                                        int | None]:
    """(entity -> lake token, the study's document count) as the last write left them."""
    doc = db[SYNC_STATE_COLLECTION].find_one({"_id": sync_state_id(asset_name, study_key)})
    if not doc:
        return {}, None
    documents = doc.get("documents")
    return dict(doc.get("tokens") or {}), documents if isinstance(documents, int) else None


def read_sync_state(db: Database, asset_name: str, study_key: str) -> dict[str, str]:
    """entity -> lake token the asset's documents of the study were last built from ({} if
    none, or if a rewrite is under way)."""
    return _read_state(db, asset_name, study_key)[0]


def _store_sync_state(db: Database, asset_name: str, study_key: str,
                      tokens: Mapping[str, str], documents: int) -> None:
    """The tokens, and the study's document count after the write (a skip or an apply derives
    its count from it: counting a study's documents scans them)."""
    doc_id = sync_state_id(asset_name, study_key)
    db[SYNC_STATE_COLLECTION].replace_one(
        {"_id": doc_id},
        {"_id": doc_id, "asset": asset_name, "study_key": study_key, "tokens": dict(tokens),
         "documents": documents, "updated_at": now_iso()},
        upsert=True,
    )


def _forget_count(db: Database, asset_name: str, study_key: str) -> None:
    db[SYNC_STATE_COLLECTION].update_one({"_id": sync_state_id(asset_name, study_key)},
                                         {"$unset": {"documents": ""}})


def _clear_sync_state(db: Database, asset_name: str, study_key: str) -> None:
    db[SYNC_STATE_COLLECTION].delete_one({"_id": sync_state_id(asset_name, study_key)})


def sync_collection(db: Database, plan: CollectionWrite, dest: MongoDestination,
                    exported_at: str | None = None) -> tuple[KeyedPlan, WriteStats]:
    """Bring the study's documents to the lake's state: skip, apply or rewrite as the sync
    state and the change logs say (see the module doc); returns the plan and what was done."""
    writer = _Writer(db, plan, dest)
    retry = _retrier(writer, dest)
    started = time.perf_counter()
    asset, study = plan.asset_name, plan.study_key
    applied, documents = retry(lambda: _read_state(db, asset, study), "reading the sync state")
    change = plan_keyed(plan.slices, applied, plan.keyed.entities if plan.keyed else ())
    exported_at = exported_at or now_iso()
    if change.action == SKIP:
        stats = WriteStats(documents=documents if documents is not None
                           else retry(writer.count, "counting the study's documents"))
    elif change.action == APPLY:
        if documents is not None:  # an apply dying half way leaves a count nobody may trust
            retry(lambda: _forget_count(db, asset, study), "updating the sync state")
        stats = writer.apply(retry, exported_at, change.keys, documents)
    else:
        if applied:  # a rewrite dying half way must not leave a state claiming the old end
            retry(lambda: _clear_sync_state(db, asset, study), "clearing the sync state")
        stats = writer.run(retry, exported_at)
    if change.action != SKIP:
        retry(lambda: _store_sync_state(db, asset, study, change.tokens, stats.documents),
              "storing the sync state")
    stats.seconds = time.perf_counter() - started
    return change, stats
