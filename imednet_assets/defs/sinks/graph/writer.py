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
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imednet_assets.defs.sinks.common import (
    DestinationError,
    WriteSettings,
    error_detail,
    with_retries,
)
from imednet_assets.defs.sinks.graph import cypher as c
from imednet_assets.defs.sinks.graph.model import StudyGraph
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


def after_batch(step: str, batch: int) -> None:
    """Seam after each written batch (tests kill the server here); does nothing."""


def new_load_id() -> str:
    return uuid.uuid4().hex


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

    def write(self, graph: StudyGraph, load_id: str | None = None) -> GraphStats:
        study = graph.study_key
        load_id = load_id or new_load_id()
        size, upsert = self.settings.batch_size, self.settings.upsert
        stats = GraphStats()
        start = time.perf_counter()
        where = f"{self.transport.destination}: study {study}"
        if not self.transport.carries_nul and (found := graph.nul_location()):
            raise DestinationError(
                f"{where}, {found}: holds a NUL character (\\x00), which this server cannot "
                "store; nothing was written")
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
