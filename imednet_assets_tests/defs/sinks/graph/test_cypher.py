"""The Cypher and parameters the writer sends (the same text goes over Bolt and FalkorDB)."""

import pytest

from imednet_assets.defs.sinks.graph import cypher as c


def test_node_upsert_merges_on_study_and_key_and_replaces_properties() -> None:
    assert c.write_nodes_query(c.RECORD) == (
        "UNWIND $rows AS row MERGE (n:`Record` {study_key: $study_key, `record_id`: "
        "row.`record_id`}) WITH n, row, CASE WHEN n.load_id IS NULL THEN 1 ELSE 0 END AS created, "
        "CASE WHEN n.row_hash = row.row_hash THEN 1 ELSE 0 END AS unchanged "
        "SET n = row, n.load_id = $load_id "
        "RETURN count(n) AS written, sum(created) AS created, sum(unchanged) AS unchanged"
    )


def test_node_insert_creates() -> None:
    assert c.write_nodes_query(c.VISIT, upsert=False) == (
        "UNWIND $rows AS row CREATE (n:`Visit`) SET n = row, n.load_id = $load_id "
        "RETURN count(n) AS written, count(n) AS created, 0 AS unchanged"
    )


def test_relationship_rows_are_key_lists_source_first() -> None:
    assert c.write_rels_query(c.HAS_VARIABLE) == (
        "UNWIND $rows AS row MATCH (a:`Form` {study_key: $study_key, `form_key`: row[0]}) "
        "MATCH (b:`Variable` {study_key: $study_key, `form_key`: row[1], "
        "`variable_name`: row[2]}) MERGE (a)-[r:`HAS_VARIABLE`]->(b) "
        "WITH r, CASE WHEN r.load_id IS NULL THEN 1 ELSE 0 END AS created "
        "SET r.load_id = $load_id RETURN count(r) AS written, sum(created) AS created"
    )
    # the study node is identified by the study key alone: its rows only hold the target key
    assert c.write_rels_query(c.HAS_SITE).startswith(
        "UNWIND $rows AS row MATCH (a:`Study` {study_key: $study_key}) "
        "MATCH (b:`Site` {study_key: $study_key, `site_id`: row[0]}) ")


def test_relationship_insert_only_matches_nodes_of_this_replay() -> None:
    assert c.write_rels_query(c.CHILD_OF, upsert=False) == (
        "UNWIND $rows AS row "
        "MATCH (a:`Record` {study_key: $study_key, `record_id`: row[0], load_id: $load_id}) "
        "MATCH (b:`Record` {study_key: $study_key, `record_id`: row[1], load_id: $load_id}) "
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


def test_neo4j_index_ddl_is_idempotent_and_composite() -> None:
    assert c.index_statements(c.NEO4J, (c.STUDY, c.VARIABLE)) == [
        "CREATE INDEX imednet_study_key IF NOT EXISTS FOR (n:`Study`) ON (n.`study_key`)",
        "CREATE INDEX imednet_variable_key IF NOT EXISTS FOR (n:`Variable`) "
        "ON (n.`study_key`, n.`form_key`, n.`variable_name`)",
        "CREATE INDEX imednet_variable_study IF NOT EXISTS FOR (n:`Variable`) "
        "ON (n.`study_key`)",
    ]


def test_falkordb_index_ddl_creates_only_missing_single_property_indexes() -> None:
    assert c.index_statements(c.FALKORDB, (c.RECORD,), frozenset({("Record", "study_key")})) == [
        "CREATE INDEX FOR (n:`Record`) ON (n.`record_id`)"]
    # every label and every merged key is covered
    assert len(c.index_statements(c.FALKORDB)) == sum(1 + len(s.keys) for s in c.NODES)


def test_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="unknown Cypher dialect 'memgraph'"):
        c.index_statements("memgraph")


def test_identifiers_are_backtick_quoted() -> None:
    assert c.quote("odd`name") == "`odd``name`"
