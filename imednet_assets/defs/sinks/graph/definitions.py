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
    from imednet_assets.defs.sinks.graph.assets import GRAPH_IO_MANAGER_KEY, build_graph_asset
    from imednet_assets.defs.sinks.graph.checks import graph_every_record_once
    from imednet_assets.defs.sinks.graph.io_manager import GraphIOManager
    from imednet_assets.defs.sinks.graph.resources import from_env

    kind = "neo4j" if os.environ.get("NEO4J_URI") else "falkordb"
    destination = from_env(dict(os.environ))
    return dg.Definitions(
        assets=[build_graph_asset(kind)],
        asset_checks=[graph_every_record_once],
        resources={"graph": destination,
                   GRAPH_IO_MANAGER_KEY: GraphIOManager(destination=destination)},
    )
