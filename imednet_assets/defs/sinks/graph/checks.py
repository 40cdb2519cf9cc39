"""`graph/study_graph` `every_record_once`: the study's `Record` nodes are as many as its LIVE lake
records (deleted = false); the graph leaves soft-deleted records out on purpose. Record nodes are
merged by node_key (study + record_id), so equal counts mean every live record once."""

from imednet_assets.defs.sinks.destination import (
    CountVerdict,
    RecordCheck,
    RecordTally,
    masked,
    reading,
)
from imednet_assets.defs.sinks.graph import cypher as c
from imednet_assets.defs.sinks.graph.assets import SINK
from imednet_assets.defs.sinks.graph.resources import GraphDestination


def record_ids_query() -> str:
    """The record_id of every Record node of the study (`$study_key`)."""
    return (f"MATCH (n:{c.quote(c.RECORD.label)} {{{c.STUDY_KEY}: $study_key}}) "
            "RETURN n.record_id")


def read_records(graph: GraphDestination, study: str, expected: int) -> RecordTally:
    """The study's Record nodes, and (only when they are not `expected`) their record ids (one
    pass over the study's ids)."""
    transport = graph.transport()
    params = {"study_key": study}
    try:
        with reading(transport.destination, transport.errors, masked(transport.secrets)):
            transport.open()
            nodes = int(transport.run(c.count_nodes_query(c.RECORD), params)[0][0])
            ids = None if nodes == expected else [
                row[0] for row in transport.run(record_ids_query(), params)]
            return RecordTally(transport.destination, nodes, ids)
    finally:
        transport.close()


RECORD_CHECK = RecordCheck(
    "study_graph",
    "The study's Record nodes are exactly as many as its live lake records (deleted = false: "
    "the graph leaves deleted records out); node_key makes each one unique.",
    "graph",
    GraphDestination,
    read_records,
    CountVerdict("the graph", "Record nodes", "Record node", ("label", c.RECORD.label),
                 "graph_record_nodes", live_only=True),
)

graph_every_record_once = SINK.record_check(RECORD_CHECK)
