"""The Cypher and parameters the writer sends (the same text goes over Bolt and FalkorDB)."""

import pytest

from imednet_assets.defs.sinks.graph import cypher as c

COLUMNS = ("node_key", "row_hash", "record_id", "odd name")


def test_node_upsert_merges_on_node_key_and_replaces_properties() -> None:
    assert c.write_nodes_query(c.RECORD, COLUMNS) == (
        "UNWIND $rows AS row MERGE (n:`Record` {node_key: row[0]}) "
        "WITH n, row, CASE WHEN n.load_id IS NULL THEN 1 ELSE 0 END AS created, "
        "CASE WHEN n.row_hash = row[1] THEN 1 ELSE 0 END AS unchanged "
        "SET n = {`node_key`: row[0], `row_hash`: row[1], `record_id`: row[2], "
        "`odd name`: row[3]}, n.load_id = $load_id "
        "RETURN count(n) AS written, sum(created) AS created, sum(unchanged) AS unchanged"
    )


def test_node_rows_must_carry_key_and_hash() -> None:
    with pytest.raises(ValueError, match="node rows must have a row_hash column"):
        c.write_nodes_query(c.RECORD, ("node_key", "record_id"))


def test_node_insert_creates() -> None:
    assert c.write_nodes_query(c.VISIT, ("node_key", "row_hash"), upsert=False) == (
        "UNWIND $rows AS row CREATE (n:`Visit`) SET n = {`node_key`: row[0], `row_hash`: row[1]}, "
        "n.load_id = $load_id RETURN count(n) AS written, count(n) AS created, 0 AS unchanged"
    )


def test_relationship_rows_are_node_key_pairs_source_first() -> None:
    assert c.write_rels_query(c.HAS_VARIABLE) == (
        "UNWIND $rows AS row MATCH (a:`Form` {node_key: row[0]}) "
        "MATCH (b:`Variable` {node_key: row[1]}) MERGE (a)-[r:`HAS_VARIABLE`]->(b) "
        "WITH r, CASE WHEN r.load_id IS NULL THEN 1 ELSE 0 END AS created "
        "SET r.load_id = $load_id RETURN count(r) AS written, sum(created) AS created"
    )


def test_relationship_insert_only_matches_nodes_of_this_replay() -> None:
    assert c.write_rels_query(c.CHILD_OF, upsert=False) == (
        "UNWIND $rows AS row "
        "MATCH (a:`Record` {node_key: row[0], load_id: $load_id}) "
        "MATCH (b:`Record` {node_key: row[1], load_id: $load_id}) "
        "CREATE (a)-[r:`CHILD_OF`]->(b) SET r.load_id = $load_id "
        "RETURN count(r) AS written, count(r) AS created"
    )


def test_stale_sweeps_touch_only_the_study() -> None:
    assert c.delete_stale_nodes_query(c.SUBJECT) == (
        "MATCH (x:`Subject` {study_key: $study_key}) "
        "WHERE (x.load_id IS NULL OR x.load_id <> $load_id) "
        "WITH x LIMIT $limit DETACH DELETE x RETURN count(*) AS deleted"
    )
    assert c.delete_stale_rels_query(c.SUBJECT_HAS_RECORD) == (
        "MATCH (a:`Subject` {study_key: $study_key})-[x:`HAS_RECORD`]->(b:`Record`) "
        "WHERE (x.load_id IS NULL OR x.load_id <> $load_id) "
        "WITH x LIMIT $limit DELETE x RETURN count(*) AS deleted"
    )


def test_neo4j_index_ddl_is_idempotent() -> None:
    assert c.index_statements(c.NEO4J, (c.STUDY, c.VARIABLE)) == [
        "CREATE INDEX imednet_study_node_key IF NOT EXISTS FOR (n:`Study`) ON (n.`node_key`)",
        "CREATE INDEX imednet_study_study IF NOT EXISTS FOR (n:`Study`) ON (n.`study_key`)",
        "CREATE INDEX imednet_variable_node_key IF NOT EXISTS FOR (n:`Variable`) "
        "ON (n.`node_key`)",
        "CREATE INDEX imednet_variable_study IF NOT EXISTS FOR (n:`Variable`) "
        "ON (n.`study_key`)",
        "CREATE INDEX imednet_variable_key IF NOT EXISTS FOR (n:`Variable`) "
        "ON (n.`study_key`, n.`form_key`, n.`variable_name`)",
    ]


def test_falkordb_index_ddl_creates_only_missing_single_property_indexes() -> None:
    assert c.index_statements(c.FALKORDB, (c.RECORD,), frozenset({("Record", "study_key")})) == [
        "CREATE INDEX FOR (n:`Record`) ON (n.`node_key`)",
        "CREATE INDEX FOR (n:`Record`) ON (n.`record_id`)"]
    # every label, its node_key, study_key and natural keys are covered
    assert len(c.index_statements(c.FALKORDB)) == sum(2 + len(s.keys) for s in c.NODES)


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="unknown Cypher dialect 'memgraph'"):
        c.index_statements("memgraph")


def test_identifiers_are_backtick_quoted() -> None:
    assert c.quote("odd`name") == "`odd``name`"
