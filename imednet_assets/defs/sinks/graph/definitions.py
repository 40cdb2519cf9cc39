"""Graph sink definitions, built only when a graph server is configured (NEO4J_URI or
FALKORDB_URL), so the demo keeps working without one."""

import os

import dagster as dg

# The destination's modules (and its client libraries) load only when it is built: an
# unconfigured destination costs the code location nothing at import.

ENV_VARS = ("NEO4J_URI", "FALKORDB_URL")


def is_configured() -> bool:
    """Whether a graph server is named in the environment."""
    return any(os.environ.get(name) for name in ENV_VARS)


def build_defs() -> dg.Definitions:
    """The graph asset and its reconciliation check, with the IO manager and the `graph`
    resource (the check reads through it), bound to the server the environment names."""
    from imednet_assets.defs.sinks.graph.assets import SINK, build_graph_asset
    from imednet_assets.defs.sinks.graph.checks import RECORD_CHECK
    from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
    from imednet_assets.defs.sinks.graph.resources import from_env

    kind = "neo4j" if os.environ.get("NEO4J_URI") else "falkordb"
    destination = from_env(dict(os.environ))
    return SINK.definitions(
        [build_graph_asset(kind)],
        {"graph": destination, SINK.io_manager_key: GraphIOManager(destination=destination)},
        RECORD_CHECK,
    )
