"""The graph's shape and every Cypher text the writer sends, as pure functions (tested as text).

The queries are portable between Neo4j 5 and FalkorDB: `UNWIND $rows`, `MERGE`/`CREATE`, `SET n =`,
`WITH ... LIMIT`, `DETACH DELETE`. The one dialect-specific part is index DDL (`index_statements`):
Neo4j 5 has `CREATE INDEX name IF NOT EXISTS` and composite indexes, FalkorDB has neither, so
there the writer lists the existing indexes first and creates the missing ones property by property.

Every node carries `node_key`, its identity as one string (see properties.py), which MERGE and
relationship endpoints look it up by. Every node and relationship carries `study_key` scoping
(nodes as a property, relationships through their endpoints) and `load_id` (the replay that last
wrote it): a replay stamps what it writes and then deletes the study's nodes and relationships
that carry another stamp.
"""

from __future__ import annotations

from dataclasses import dataclass

from imednet_assets.defs.sinks.graph.properties import LOAD_ID, NODE_KEY, ROW_HASH

STUDY_KEY = "study_key"
NEO4J = "neo4j"
FALKORDB = "falkordb"
DIALECTS = (NEO4J, FALKORDB)


@dataclass(frozen=True)
class NodeSpec:
    """A node label and the properties that identify one node within a study."""

    label: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class RelSpec:
    """A relationship type between two labels; endpoints are found by their keys."""

    type: str
    source: NodeSpec
    target: NodeSpec

    @property
    def name(self) -> str:
        return f"{self.source.label}-{self.type}->{self.target.label}"


STUDY = NodeSpec("Study", ())
SITE = NodeSpec("Site", ("site_id",))
FORM = NodeSpec("Form", ("form_key",))
VARIABLE = NodeSpec("Variable", ("form_key", "variable_name"))
SUBJECT = NodeSpec("Subject", ("subject_key",))
VISIT = NodeSpec("Visit", ("visit_id",))
RECORD = NodeSpec("Record", ("record_id",))
#: Written in this order: parents first, so relationships find both ends.
NODES: tuple[NodeSpec, ...] = (STUDY, SITE, FORM, VARIABLE, SUBJECT, VISIT, RECORD)

HAS_SITE = RelSpec("HAS_SITE", STUDY, SITE)
HAS_FORM = RelSpec("HAS_FORM", STUDY, FORM)
HAS_VARIABLE = RelSpec("HAS_VARIABLE", FORM, VARIABLE)
HAS_SUBJECT = RelSpec("HAS_SUBJECT", STUDY, SUBJECT)
ENROLLED_AT = RelSpec("ENROLLED_AT", SUBJECT, SITE)
HAS_VISIT = RelSpec("HAS_VISIT", SUBJECT, VISIT)
VISIT_HAS_RECORD = RelSpec("HAS_RECORD", VISIT, RECORD)
#: Records outside any visit (logs, subject-level forms: visit_id 0) hang off their subject.
SUBJECT_HAS_RECORD = RelSpec("HAS_RECORD", SUBJECT, RECORD)
INSTANCE_OF = RelSpec("INSTANCE_OF", RECORD, FORM)
CHILD_OF = RelSpec("CHILD_OF", RECORD, RECORD)
RELS: tuple[RelSpec, ...] = (
    HAS_SITE, HAS_FORM, HAS_VARIABLE, HAS_SUBJECT, ENROLLED_AT, HAS_VISIT,
    VISIT_HAS_RECORD, SUBJECT_HAS_RECORD, INSTANCE_OF, CHILD_OF,
)  # fmt: skip


def quote(name: str) -> str:
    """A Cypher identifier in backticks (embedded backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def _props_map(columns: tuple[str, ...]) -> str:
    """A map literal taking property `columns[i]` from `row[i]` (a null leaves it unset)."""
    return "{" + ", ".join(f"{quote(k)}: row[{i}]" for i, k in enumerate(columns)) + "}"


def _column(columns: tuple[str, ...], name: str) -> int:
    if name not in columns:
        raise ValueError(f"node rows must have a {name} column, got {columns}")
    return columns.index(name)


def write_nodes_query(spec: NodeSpec, columns: tuple[str, ...], upsert: bool = True) -> str:
    """Write one batch of `spec` nodes; each row of `$rows` is a list of property values in the
    order of `columns` (which hold `node_key` and `row_hash`).

    Rows are lists, not maps, because a map repeats every property name in every row: lists
    halve the payload and are what FalkorDB's text parameters parse fastest.
    Upsert: MERGE on `node_key`, replace all properties (`SET n = {...}`, so a property the
    source dropped goes too), and count new and unchanged nodes (same `row_hash` as before).
    Insert: CREATE; the replay's stale-node sweep removes the previous copies afterwards.
    Returns one row: written, created, unchanged.
    """
    label, props = quote(spec.label), _props_map(columns)
    if not upsert:
        return (
            f"UNWIND $rows AS row CREATE (n:{label}) SET n = {props}, n.{LOAD_ID} = $load_id "
            "RETURN count(n) AS written, count(n) AS created, 0 AS unchanged"
        )
    key, digest = _column(columns, NODE_KEY), _column(columns, ROW_HASH)
    return (
        f"UNWIND $rows AS row MERGE (n:{label} {{{NODE_KEY}: row[{key}]}}) "
        f"WITH n, row, CASE WHEN n.{LOAD_ID} IS NULL THEN 1 ELSE 0 END AS created, "
        f"CASE WHEN n.{ROW_HASH} = row[{digest}] THEN 1 ELSE 0 END AS unchanged "
        f"SET n = {props}, n.{LOAD_ID} = $load_id "
        "RETURN count(n) AS written, sum(created) AS created, sum(unchanged) AS unchanged"
    )


def write_rels_query(spec: RelSpec, upsert: bool = True) -> str:
    """Write one batch of `spec` relationships; each row of `$rows` is [source node_key, target
    node_key]. A row whose endpoint is missing writes nothing.

    Endpoints are found by `node_key` alone (one string index lookup each: FalkorDB answers a
    numeric or two-property lookup ~20x slower). Insert mode only matches nodes of this replay
    (`load_id`), never the previous copies. Returns one row: written, created.
    """
    stamp = "" if upsert else f", {LOAD_ID}: $load_id"
    head = (
        f"UNWIND $rows AS row MATCH (a:{quote(spec.source.label)} {{{NODE_KEY}: row[0]{stamp}}}) "
        f"MATCH (b:{quote(spec.target.label)} {{{NODE_KEY}: row[1]{stamp}}}) "
    )
    if not upsert:
        return head + (
            f"CREATE (a)-[r:{quote(spec.type)}]->(b) SET r.{LOAD_ID} = $load_id "
            "RETURN count(r) AS written, count(r) AS created"
        )
    return head + (
        f"MERGE (a)-[r:{quote(spec.type)}]->(b) "
        f"WITH r, CASE WHEN r.{LOAD_ID} IS NULL THEN 1 ELSE 0 END AS created "
        f"SET r.{LOAD_ID} = $load_id "
        "RETURN count(r) AS written, sum(created) AS created"
    )


_STALE = f"(x.{LOAD_ID} IS NULL OR x.{LOAD_ID} <> $load_id)"


def delete_stale_rels_query(spec: RelSpec) -> str:
    """Delete up to `$limit` of the study's `spec` relationships not written by this replay."""
    return (
        f"MATCH (a:{quote(spec.source.label)} {{{STUDY_KEY}: $study_key}})"
        f"-[x:{quote(spec.type)}]->(b:{quote(spec.target.label)}) "
        f"WHERE {_STALE} WITH x LIMIT $limit DELETE x RETURN count(*) AS deleted"
    )


def delete_stale_nodes_query(spec: NodeSpec) -> str:
    """Delete up to `$limit` of the study's `spec` nodes not written by this replay (with any
    relationship still attached)."""
    return (
        f"MATCH (x:{quote(spec.label)} {{{STUDY_KEY}: $study_key}}) "
        f"WHERE {_STALE} WITH x LIMIT $limit DETACH DELETE x RETURN count(*) AS deleted"
    )


def count_nodes_query(spec: NodeSpec) -> str:
    return f"MATCH (n:{quote(spec.label)} {{{STUDY_KEY}: $study_key}}) RETURN count(n) AS nodes"


#: Lists the indexes that exist (FalkorDB; Neo4j does not need it: `IF NOT EXISTS`).
FALKORDB_INDEX_LIST = "CALL db.indexes() YIELD label, properties RETURN label, properties"


def index_properties(spec: NodeSpec) -> tuple[str, ...]:
    """Every property indexed on `spec`: `node_key` (MERGE and relationship endpoints),
    `study_key` (the stale sweep) and the natural keys (for people querying the graph)."""
    return (NODE_KEY, STUDY_KEY, *spec.keys)


def index_statements(
    dialect: str, specs: tuple[NodeSpec, ...] = NODES,
    existing: frozenset[tuple[str, str]] = frozenset(),
) -> list[str]:
    """DDL creating the indexes on every merged key, run before the first write.

    neo4j: a `node_key` index per label (MERGE and MATCH), a `study_key` index (the stale sweep)
    and a composite (study_key, keys) for people querying; `IF NOT EXISTS` makes all idempotent.
    falkordb: one exact-match index per (label, property) not in `existing` (it has no
    `IF NOT EXISTS` and refuses to index a property twice).
    """
    statements: list[str] = []
    for spec in specs:
        label = quote(spec.label)
        props = index_properties(spec)
        if dialect == NEO4J:
            base = f"imednet_{spec.label.lower()}"
            statements.append(f"CREATE INDEX {base}_node_key IF NOT EXISTS FOR (n:{label}) "
                              f"ON (n.{quote(NODE_KEY)})")
            statements.append(f"CREATE INDEX {base}_study IF NOT EXISTS FOR (n:{label}) "
                              f"ON (n.{quote(STUDY_KEY)})")
            if spec.keys:
                on = ", ".join(f"n.{quote(p)}" for p in props[1:])
                statements.append(
                    f"CREATE INDEX {base}_key IF NOT EXISTS FOR (n:{label}) ON ({on})")
        elif dialect == FALKORDB:
            statements += [
                f"CREATE INDEX FOR (n:{label}) ON (n.{quote(p)})"
                for p in props
                if (spec.label, p) not in existing
            ]
        else:
            raise ValueError(f"unknown Cypher dialect {dialect!r}; expected one of {DIALECTS}")
    return statements


# -- incremental apply and sync state ---------------------------------------------------------

#: The label of the node holding what a graph asset last applied for one study; it has no
#: `study_key`, so nothing that selects a study's data (the sweep, checks, counts) sees it.
SYNC_STATE = "SyncState"


def node_keys_by_id_query(spec: NodeSpec, id_property: str) -> str:
    """The `node_key` of the study's `spec` nodes whose `id_property` is one of `$ids` (where a
    changed lake row's node is now, even when its natural key changed)."""
    return (
        f"MATCH (n:{quote(spec.label)} {{{STUDY_KEY}: $study_key}}) "
        f"WHERE n.{quote(id_property)} IN $ids RETURN n.{NODE_KEY}"
    )


def undeclared_variables_query() -> str:
    """The `node_key` of the study's Variable nodes for record-data keys the dictionary lacks."""
    return (
        f"MATCH (n:{quote(VARIABLE.label)} {{{STUDY_KEY}: $study_key}}) "
        f"WHERE n.in_dictionary = false RETURN n.{NODE_KEY}"
    )


def delete_nodes_query(spec: NodeSpec) -> str:
    """Delete the `spec` nodes whose `node_key` is one of `$keys`, with their relationships."""
    return (
        f"UNWIND $keys AS k MATCH (x:{quote(spec.label)} {{{NODE_KEY}: k}}) "
        "DETACH DELETE x RETURN count(*) AS deleted"
    )


def delete_stale_rels_at_query(spec: RelSpec, side: str) -> str:
    """Delete the `spec` relationships at the nodes `$keys` (on the `source` or `target` side)
    not written by this apply: those the changed rows no longer give."""
    if side not in ("source", "target"):
        raise ValueError(f"side must be source or target, got {side!r}")
    at = f" {{{NODE_KEY}: k}}"
    a = quote(spec.source.label) + (at if side == "source" else "")
    b = quote(spec.target.label) + (at if side == "target" else "")
    return (
        f"UNWIND $keys AS k MATCH (a:{a})-[x:{quote(spec.type)}]->(b:{b}) "
        f"WHERE {_STALE} DELETE x RETURN count(*) AS deleted"
    )


def read_sync_state_query() -> str:
    return f"MATCH (s:{SYNC_STATE} {{sync_key: $sync_key}}) RETURN s.tokens"


def store_sync_state_query() -> str:
    """Tokens as JSON text: neither Neo4j nor FalkorDB stores a map as a property value."""
    return (
        f"MERGE (s:{SYNC_STATE} {{sync_key: $sync_key}}) "
        "SET s.asset = $asset, s.study = $study, s.tokens = $tokens RETURN count(s)"
    )


def clear_sync_state_query() -> str:
    return f"MATCH (s:{SYNC_STATE} {{sync_key: $sync_key}}) DELETE s RETURN count(*)"
