"""The graph's shape and every Cypher text the writer sends, as pure functions (tested as text).

The queries are portable between Neo4j 5 and FalkorDB: `UNWIND $rows`, `MERGE`/`CREATE`, `SET n =`,
`WITH ... LIMIT`, `DETACH DELETE`. The one dialect-specific part is index DDL (`index_statements`):
Neo4j 5 has `CREATE INDEX name IF NOT EXISTS` and composite indexes, FalkorDB has neither, so
there the writer lists the existing indexes first and creates the missing ones property by property.

Every node and relationship carries `study_key` scoping (nodes as a property, relationships through
their endpoints) and `load_id` (the replay that last wrote it): a replay stamps what it writes and
then deletes the study's nodes and relationships that carry another stamp.
"""

from __future__ import annotations

from dataclasses import dataclass

from imednet_assets.defs.sinks.graph.properties import LOAD_ID, ROW_HASH

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


def _match_props(spec: NodeSpec, value_of: list[str], stamped: bool) -> str:
    pairs = [f"{STUDY_KEY}: $study_key"]
    pairs += [f"{quote(k)}: {v}" for k, v in zip(spec.keys, value_of, strict=True)]
    if stamped:
        pairs.append(f"{LOAD_ID}: $load_id")
    return "{" + ", ".join(pairs) + "}"


def write_nodes_query(spec: NodeSpec, upsert: bool = True) -> str:
    """Write one batch of `spec` nodes; `$rows` holds each node's full property map.

    Upsert: MERGE on (study_key, keys), replace all properties (`SET n = row`, so a property the
    source dropped goes too), and count new and unchanged nodes (same `row_hash` as before).
    Insert: CREATE; the replay's stale-node sweep removes the previous copies afterwards.
    Returns one row: written, created, unchanged.
    """
    label = quote(spec.label)
    if not upsert:
        return (
            f"UNWIND $rows AS row CREATE (n:{label}) SET n = row, n.{LOAD_ID} = $load_id "
            "RETURN count(n) AS written, count(n) AS created, 0 AS unchanged"
        )
    keys = _match_props(spec, [f"row.{quote(k)}" for k in spec.keys], stamped=False)
    return (
        f"UNWIND $rows AS row MERGE (n:{label} {keys}) "
        f"WITH n, row, CASE WHEN n.{LOAD_ID} IS NULL THEN 1 ELSE 0 END AS created, "
        f"CASE WHEN n.{ROW_HASH} = row.{ROW_HASH} THEN 1 ELSE 0 END AS unchanged "
        f"SET n = row, n.{LOAD_ID} = $load_id "
        "RETURN count(n) AS written, sum(created) AS created, sum(unchanged) AS unchanged"
    )


def write_rels_query(spec: RelSpec, upsert: bool = True) -> str:
    """Write one batch of `spec` relationships; each row of `$rows` is a list: the source's key
    values, then the target's. A row whose endpoint is missing writes nothing.

    Insert mode only matches nodes of this replay (`load_id`), never the previous copies.
    Returns one row: written, created.
    """
    n = len(spec.source.keys)
    source = _match_props(spec.source, [f"row[{i}]" for i in range(n)], stamped=not upsert)
    target = _match_props(
        spec.target, [f"row[{n + i}]" for i in range(len(spec.target.keys))], stamped=not upsert
    )
    head = (
        f"UNWIND $rows AS row MATCH (a:{quote(spec.source.label)} {source}) "
        f"MATCH (b:{quote(spec.target.label)} {target}) "
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
    """Every property a MERGE or a stale sweep of `spec` looks nodes up by."""
    return (STUDY_KEY, *spec.keys)


def index_statements(
    dialect: str, specs: tuple[NodeSpec, ...] = NODES,
    existing: frozenset[tuple[str, str]] = frozenset(),
) -> list[str]:
    """DDL creating the indexes on every merged key, run before the first write.

    neo4j: a composite index on (study_key, keys) per label, used by MERGE and MATCH, and a
    study_key index for the stale sweep; `IF NOT EXISTS` makes both idempotent.
    falkordb: one exact-match index per (label, property) not in `existing` (it has no
    `IF NOT EXISTS` and refuses to index a property twice).
    """
    statements: list[str] = []
    for spec in specs:
        label = quote(spec.label)
        props = index_properties(spec)
        if dialect == NEO4J:
            base = f"imednet_{spec.label.lower()}"
            on = ", ".join(f"n.{quote(p)}" for p in props)
            statements.append(f"CREATE INDEX {base}_key IF NOT EXISTS FOR (n:{label}) ON ({on})")
            if spec.keys:
                statements.append(
                    f"CREATE INDEX {base}_study IF NOT EXISTS FOR (n:{label}) "
                    f"ON (n.{quote(STUDY_KEY)})"
                )
        elif dialect == FALKORDB:
            statements += [
                f"CREATE INDEX FOR (n:{label}) ON (n.{quote(p)})"
                for p in props
                if (spec.label, p) not in existing
            ]
        else:
            raise ValueError(f"unknown Cypher dialect {dialect!r}; expected one of {DIALECTS}")
    return statements
