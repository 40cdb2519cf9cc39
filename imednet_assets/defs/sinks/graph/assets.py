"""The graph sink asset: one study's clinical graph, replayed from the lake as a whole.

One asset, not one per label: relationships cross every label (record -> visit -> subject -> site,
record -> form), and one replay with one stamp is what lets the stale sweep leave the study's
subgraph exactly as the source says. Per-label counts are in the materialization metadata.
"""

import dagster as dg

from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.graph.io_manager import GraphWrite
from imednet_assets.defs.sinks.graph.model import ENTITIES

SINK = Sink("graph")
GRAPH_IO_MANAGER_KEY = SINK.io_manager_key
POOL = SINK.pool


def build_graph_asset(kind: str = "neo4j") -> dg.AssetsDefinition:
    """The `graph/study_graph` asset; `kind` is the server's kind tag (neo4j or falkordb)."""
    return SINK.assets([SINK.study_asset(
        "study_graph", ENTITIES,
        "The study as a property graph: Study, Site, Subject, Visit, Record, Form and "
        "Variable nodes with HAS_SITE, ENROLLED_AT, HAS_SUBJECT, HAS_VISIT, HAS_RECORD, "
        "INSTANCE_OF, CHILD_OF (and HAS_FORM, HAS_VARIABLE). A replay leaves the study's "
        "subgraph exactly as the lake says; deleted records and subjects are removed.",
        lambda study, slices: GraphWrite(study, dict(slices)),
        kinds={kind},
    )])[0]
