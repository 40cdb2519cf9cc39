"""`graph/study_graph` `every_record_once`: the study's `Record` nodes are as many as its LIVE lake
records (deleted = false); the graph leaves soft-deleted records out on purpose. Record nodes are
merged by node_key (study + record_id), so equal counts mean every live record once."""

import dagster as dg

from imednet_assets.defs.checks._support import (
    ERROR,
    id_samples,
    lake_record_ids,
    live_records,
    result,
    study_check,
    study_of,
)
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.common import DestinationError, error_detail
from imednet_assets.defs.sinks.graph import cypher as c
from imednet_assets.defs.sinks.graph.assets import POOL
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets.defs.sinks.lake_inputs import lake_in


def record_ids_query() -> str:
    """The record_id of every Record node of the study (`$study_key`)."""
    return (f"MATCH (n:{c.quote(c.RECORD.label)} {{{c.STUDY_KEY}: $study_key}}) "
            "RETURN n.record_id")


@study_check(
    ["graph", "study_graph"],
    "every_record_once",
    "The study's Record nodes are exactly as many as its live lake records (deleted = false: "
    "the graph leaves deleted records out); node_key makes each one unique.",
    additional_ins={"records": lake_in("records")},
    pool=POOL,
)
def graph_every_record_once(
    context: dg.AssetCheckExecutionContext, records: LakeSlice, graph: GraphDestination
) -> dg.AssetCheckResult:
    study = study_of(context)
    lake_live = live_records(records)
    transport = graph.transport()
    params = {"study_key": study}
    samples: dict[str, list[int]] = {"missing_sample": [], "unexpected_sample": []}
    try:
        transport.open()
        nodes = int(transport.run(c.count_nodes_query(c.RECORD), params)[0][0])
        if nodes != lake_live:  # only then: which ones (one pass over the study's ids)
            found = (row[0] for row in transport.run(record_ids_query(), params))
            samples = id_samples(lake_record_ids(records, live_only=True), found)
    except DestinationError as err:
        raise dg.Failure(description=f"every_record_once for study {study}: {err}") from None
    except transport.errors as err:
        detail = error_detail(err, transport.secrets, 300)
        raise dg.Failure(
            description=f"every_record_once for study {study}: reading "
            f"{transport.destination} failed: {detail}"
        ) from None
    finally:
        transport.close()
    passed = nodes == lake_live
    return result(
        passed,
        ERROR,
        f"study {study}: "
        + (f"{lake_live} live lake records, each one Record node" if passed else
           f"the graph holds {nodes} Record nodes, the lake {lake_live} live records"),
        study=study,
        label=c.RECORD.label,
        destination=transport.destination,
        lake_live_rows=lake_live,
        lake_deleted_rows=records.num_rows - lake_live,
        graph_record_nodes=nodes,
        **samples,
    )
