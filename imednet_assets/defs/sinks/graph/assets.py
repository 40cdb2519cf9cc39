"""The graph sink asset: one study's clinical graph, replayed from the lake as a whole.

One asset, not one per label: relationships cross every label (record -> visit -> subject -> site,
record -> form), and one replay with one stamp is what lets the stale sweep leave the study's
subgraph exactly as the source says. Per-label counts are in the materialization metadata.
"""

import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.graph.io_manager import GraphWrite
from imednet_assets.defs.sinks.graph.model import ENTITIES

LAKE_IO_MANAGER_KEY = "lake_io_manager"
GRAPH_IO_MANAGER_KEY = "graph_io_manager"
POOL = "graph_writer"
GROUP = "graph"


def build_graph_asset(kind: str = "neo4j") -> dg.AssetsDefinition:
    """The `graph/study_graph` asset; `kind` is the server's kind tag (neo4j or falkordb)."""

    @dg.asset(
        key=["graph", "study_graph"],
        ins={e: dg.AssetIn(key=["imednet", e], input_manager_key=LAKE_IO_MANAGER_KEY)
             for e in ENTITIES},
        partitions_def=study_partitions,
        group_name=GROUP,
        kinds={kind},
        io_manager_key=GRAPH_IO_MANAGER_KEY,
        pool=POOL,
        description="The study as a property graph: Study, Site, Subject, Visit, Record, Form and "
        "Variable nodes with HAS_SITE, ENROLLED_AT, HAS_SUBJECT, HAS_VISIT, HAS_RECORD, "
        "INSTANCE_OF, CHILD_OF (and HAS_FORM, HAS_VARIABLE). A replay leaves the study's "
        "subgraph exactly as the lake says; deleted records and subjects are removed.",
    )
    def study_graph(
        context: dg.AssetExecutionContext, studies: LakeSlice, sites: LakeSlice, forms: LakeSlice,
        variables: LakeSlice, subjects: LakeSlice, visits: LakeSlice, records: LakeSlice,
    ) -> GraphWrite:
        study = context.partition_key
        slices = {"studies": studies, "sites": sites, "forms": forms, "variables": variables,
                  "subjects": subjects, "visits": visits, "records": records}
        for lake in slices.values():
            if lake.study_key != study:
                raise dg.Failure(
                    description=f"lake slice of {lake.entity} is for study {lake.study_key}, "
                    f"the run is for study {study}")
        return GraphWrite(study, dict(slices))

    return study_graph
