"""Replays one study into the graph: indexes, nodes, relationships, then the stale sweep.

Order and why:
0. a study the server cannot store exactly (a NUL in a string, over FalkorDB) is refused whole;
1. indexes on every merged key (MERGE without one scans every node of the label);
2. nodes, parents first, in `UNWIND $rows` batches, each stamped with this replay's `load_id`;
3. relationships (both ends exist by now), stamped the same way;
4. the study's relationships, then nodes, that carry another stamp are deleted, in batches.
The graph is never emptier than the source during a replay; a replay that dies half way leaves a
mix of old and new that the next replay of the study sweeps (its stamp differs from both).
Only nodes with this `study_key` (and relationships starting at them) are ever touched.

Incremental (`sync`): a `SyncState` node per asset and study keeps the lake tokens the graph was
last built from, set after the write (and removed before a rewrite, so a rewrite dying half way
is followed by another). The lake's change logs then decide: skip (nothing read or written),
apply (`apply`: the nodes of the changed records, subjects and visits, and every relationship
at them, merged under a new stamp; their relationships with another stamp, and their nodes the
source no longer gives, deleted) or rewrite (the replay above, stamps and sweep unchanged:
nodes an apply stamped differ from the rewrite's stamp like any other).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from imednet_assets.defs.sinks.changes import APPLY, SKIP, KeyedPlan, plan_keyed
from imednet_assets.defs.sinks.common import (
    DestinationError,
    WriteSettings,
    error_detail,
    with_retries,
)
from imednet_assets.defs.sinks.graph import cypher as c
from imednet_assets.defs.sinks.graph.model import ENTITY_OF, KEYED_ENTITIES, SPEC_OF, StudyGraph
from imednet_assets.defs.sinks.graph.transport import GraphTransport
from imednet_assets.settings import redact


@dataclass
class Counts:
    written: int = 0
    created: int = 0
    unchanged: int = 0
    deleted: int = 0


@dataclass
class GraphStats:
    """What one replay did, per node label and relationship (`Source-TYPE->Target`)."""

    nodes: dict[str, Counts] = field(default_factory=dict)
    rels: dict[str, Counts] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0

    def total(self, kind: str, what: str) -> int:
        return sum(getattr(n, what) for n in getattr(self, kind).values())

    def updated(self, kind: str) -> int:
        """Written again with other content (neither new nor found unchanged)."""
        return (self.total(kind, "written") - self.total(kind, "created")
                - self.total(kind, "unchanged"))


def after_batch(step: str, batch: int) -> None:
    """Seam after each written batch (tests kill the server here); does nothing."""


def new_load_id() -> str:
    return uuid.uuid4().hex


def sync_key(asset_name: str, study_key: str) -> str:
    return f"{asset_name}/{study_key}"


def _chunks(values: Iterable[Any], size: int) -> Iterable[list[Any]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]


class StudyWriter:
    """Writes one `StudyGraph` through an open transport, with the destination's settings."""

    def __init__(
        self, transport: GraphTransport, settings: WriteSettings,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.log = log or (lambda _msg: None)

    def _run(self, query: str, params: Mapping[str, Any], what: str) -> list[list[Any]]:
        """One query with retries on transient errors; any failure names `what` (no secrets)."""
        t = self.transport
        try:
            return with_retries(
                lambda: t.run(query, params), settings=self.settings, transient=t.transient,
                what=what, secrets=t.secrets,
                on_retry=lambda n, exc: self.log(
                    redact(f"{what}: retry {n} after {type(exc).__name__}", list(t.secrets))),
            )
        except DestinationError:
            raise
        except t.errors as exc:
            detail = error_detail(exc, t.secrets, 500)
            raise DestinationError(f"{what} failed: {detail}") from None

    def ensure_indexes(self, study: str) -> None:
        """Every merged key indexed before the first write (idempotent)."""
        where = f"{self.transport.destination}: study {study}, creating indexes"
        existing: frozenset[tuple[str, str]] = frozenset()
        if self.transport.dialect == c.FALKORDB:
            rows = self._run(c.FALKORDB_INDEX_LIST, {}, where)
            existing = frozenset((label, p) for label, props in rows for p in props)
        for statement in c.index_statements(self.transport.dialect, existing=existing):
            self._run(statement, {}, where)

    def refuse_nul(self, graph: StudyGraph,
                   changed: Mapping[str, Collection[Any]] | None = None) -> None:
        """Refuse the study whole, before anything moves, when the server cannot store one of
        its strings (a NUL over FalkorDB); `changed` limits the look to the changed rows."""
        if not self.transport.carries_nul and (found := graph.nul_location(changed)):
            raise DestinationError(
                f"{self.transport.destination}: study {graph.study_key}, {found}: holds a NUL "
                "character (\\x00), which this server cannot store; nothing was written")

    def write(self, graph: StudyGraph, load_id: str | None = None, *,
              checked: bool = False) -> GraphStats:
        """Replay the whole study (see the module doc); `checked`: `refuse_nul` already ran."""
        study = graph.study_key
        load_id = load_id or new_load_id()
        size, upsert = self.settings.batch_size, self.settings.upsert
        stats = GraphStats()
        start = time.perf_counter()
        where = f"{self.transport.destination}: study {study}"
        if not checked:
            self.refuse_nul(graph)
        self.ensure_indexes(study)
        base = {"study_key": study, "load_id": load_id}

        for spec in c.NODES:
            counts = stats.nodes.setdefault(spec.label, Counts())
            for i, batch in enumerate(graph.nodes(spec, size)):
                query = c.write_nodes_query(spec, batch.columns, upsert)
                what = f"{where}, {spec.label} nodes batch {i + 1} ({len(batch.rows)} rows)"
                result = self._run(query, {**base, "rows": batch.rows}, what)
                written, created, unchanged = (int(v or 0) for v in result[0])
                counts.written += written
                counts.created += created
                counts.unchanged += unchanged
                stats.batches += 1
                after_batch(spec.label, i + 1)
            self.log(f"{where}: {counts.written} {spec.label} nodes written")

        for rel in c.RELS:
            counts = stats.rels.setdefault(rel.name, Counts())
            query = c.write_rels_query(rel, upsert)
            for i, pairs in enumerate(graph.rels(rel, size)):
                what = f"{where}, {rel.name} relationships batch {i + 1} ({len(pairs)} rows)"
                written, created = (int(v or 0) for v in self._run(
                    query, {**base, "rows": pairs}, what)[0])
                counts.written += written
                counts.created += created
                stats.batches += 1
                after_batch(rel.name, i + 1)
            counts.unchanged = counts.written - counts.created

        for rel in c.RELS:
            stats.rels[rel.name].deleted = self._sweep(
                c.delete_stale_rels_query(rel), base, f"{where}, removing stale {rel.name}", stats)
        for spec in reversed(c.NODES):
            stats.nodes[spec.label].deleted = self._sweep(
                c.delete_stale_nodes_query(spec), base,
                f"{where}, removing stale {spec.label} nodes", stats)
        stats.seconds = time.perf_counter() - start
        return stats

    def count_nodes(self, study: str) -> dict[str, int]:
        """label -> the study's nodes of it (one indexed count per label)."""
        what = f"{self.transport.destination}: study {study}, counting nodes"
        return {spec.label: int(self._run(c.count_nodes_query(spec), {"study_key": study},
                                          what)[0][0] or 0)
                for spec in c.NODES}

    def _sweep(self, query: str, base: dict, what: str, stats: GraphStats) -> int:
        """Run a `LIMIT $limit` delete until it deletes less than a batch."""
        limit = self.settings.batch_size
        total = 0
        while True:
            deleted = int(self._run(query, {**base, "limit": limit}, what)[0][0] or 0)
            stats.batches += 1
            total += deleted
            if deleted < limit:
                return total

    # -- incremental ----------------------------------------------------------------------

    def sync(self, graph: StudyGraph, asset_name: str) -> tuple[KeyedPlan, GraphStats]:
        """Bring the study's subgraph to the lake's state: skip, apply or rewrite as the stored
        sync state and the lake's change logs say; the new state is set last."""
        study = graph.study_key
        applied = self.read_sync_state(asset_name, study)
        plan = plan_keyed(graph.slices, applied, KEYED_ENTITIES)
        if plan.action == SKIP:
            return plan, GraphStats()
        if plan.action == APPLY:
            stats = self.apply(graph, plan.keys)
        else:
            self.refuse_nul(graph)  # a refused study keeps its graph and state as they are
            if applied:  # a rewrite dying half way must not leave a state claiming the old end
                self._run(c.clear_sync_state_query(), {"sync_key": sync_key(asset_name, study)},
                          f"{self.transport.destination}: study {study}, clearing the sync state")
            stats = self.write(graph, checked=True)
        self._run(c.store_sync_state_query(),
                  {"sync_key": sync_key(asset_name, study), "asset": asset_name, "study": study,
                   "tokens": orjson.dumps(plan.tokens, option=orjson.OPT_SORT_KEYS).decode()},
                  f"{self.transport.destination}: study {study}, storing the sync state")
        return plan, stats

    def read_sync_state(self, asset_name: str, study: str) -> dict[str, str]:
        """entity -> lake token the study's subgraph was last built from ({} when none)."""
        rows = self._run(c.read_sync_state_query(), {"sync_key": sync_key(asset_name, study)},
                         f"{self.transport.destination}: study {study}, reading the sync state")
        return dict(orjson.loads(rows[0][0])) if rows and rows[0][0] else {}

    def apply(self, graph: StudyGraph, changed: Mapping[str, Collection[Any]],
              load_id: str | None = None) -> GraphStats:
        """Merge what the changed lake rows (entity -> ids; records, subjects, visits) touch;
        see the module doc. Ends in the graph a rewrite of the same lake would give."""
        study = graph.study_key
        load_id = load_id or new_load_id()
        size = self.settings.batch_size
        stats = GraphStats()
        start = time.perf_counter()
        where = f"{self.transport.destination}: study {study}"
        self.refuse_nul(graph, changed)
        self.ensure_indexes(study)
        base = {"study_key": study, "load_id": load_id}
        touched = self._touched(graph, changed, where)

        written: dict[str, set[str]] = {}
        for spec in c.NODES:
            if not touched.get(spec.label):
                continue
            counts = stats.nodes.setdefault(spec.label, Counts())
            mine = written.setdefault(spec.label, set())
            for i, batch in enumerate(graph.nodes_among(spec, touched[spec.label], size)):
                what = f"{where}, changed {spec.label} nodes batch {i + 1} ({len(batch.rows)} rows)"
                # always MERGE (the insert mode's CREATE would duplicate the nodes that stay)
                result = self._run(c.write_nodes_query(spec, batch.columns, upsert=True),
                                   {**base, "rows": batch.rows}, what)
                n, created, unchanged = (int(v or 0) for v in result[0])
                counts.written += n
                counts.created += created
                counts.unchanged += unchanged
                mine.update(row[0] for row in batch.rows)  # node_key is the first column
                stats.batches += 1
                after_batch(spec.label, i + 1)

        for rel in c.RELS:
            if not (touched.get(rel.source.label) or touched.get(rel.target.label)):
                continue
            counts = stats.rels.setdefault(rel.name, Counts())
            for i, pairs in enumerate(graph.rels_at(rel, touched, size)):
                what = f"{where}, changed {rel.name} relationships batch {i + 1}"
                n, created = (int(v or 0) for v in self._run(
                    c.write_rels_query(rel, upsert=True), {**base, "rows": pairs}, what)[0])
                counts.written += n
                counts.created += created
                stats.batches += 1
                after_batch(rel.name, i + 1)
            counts.unchanged = counts.written - counts.created
            # relationships a changed node had and no longer has: another stamp
            for side, label in (("source", rel.source.label), ("target", rel.target.label)):
                for keys in _chunks(written.get(label, ()), size):
                    counts.deleted += int(self._run(
                        c.delete_stale_rels_at_query(rel, side), {**base, "keys": keys},
                        f"{where}, removing changed {rel.name}")[0][0] or 0)
                    stats.batches += 1

        for spec in reversed(c.NODES):
            gone = touched.get(spec.label, set()) - written.get(spec.label, set())
            counts = stats.nodes.setdefault(spec.label, Counts())
            for keys in _chunks(gone, size):
                counts.deleted += int(self._run(
                    c.delete_nodes_query(spec), {"keys": keys},
                    f"{where}, removing deleted {spec.label} nodes")[0][0] or 0)
                stats.batches += 1
        stats.seconds = time.perf_counter() - start
        return stats

    def _touched(self, graph: StudyGraph, changed: Mapping[str, Collection[Any]],
                 where: str) -> dict[str, set[str]]:
        """label -> `node_key`s an apply must bring to the source's state: the changed rows'
        nodes as the lake names them and as the graph holds them (a natural key may have
        changed), and, when records changed, every undeclared Variable the lake or the graph
        has. Not only those that came or went: an apply that died after a new one's node but
        before its relationship would leave it without one on the next run (they are few)."""
        touched: dict[str, set[str]] = {}
        for entity, ids in changed.items():
            if not ids:
                continue
            spec = SPEC_OF[entity]
            keys = touched.setdefault(spec.label, set())
            keys |= graph.changed_node_keys(entity, ids)
            id_column = graph.id_column(entity)
            if spec.keys == (id_column,):
                continue  # the id is the node's key (records, visits): it cannot have moved
            query = c.node_keys_by_id_query(spec, id_column)
            for chunk in _chunks(ids, self.settings.batch_size):
                rows = self._run(query, {"study_key": graph.study_key, "ids": chunk},
                                 f"{where}, finding changed {ENTITY_OF[spec.label]}")
                keys.update(row[0] for row in rows)
        if changed.get("records"):
            rows = self._run(c.undeclared_variables_query(), {"study_key": graph.study_key},
                             f"{where}, reading undeclared variables")
            have = {row[0] for row in rows}
            touched.setdefault(c.VARIABLE.label, set()).update(have | graph.undeclared_keys())
        return touched
