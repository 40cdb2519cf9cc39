"""Graph sink: the study's clinical hierarchy as a property graph (Neo4j over Bolt, or FalkorDB)."""
