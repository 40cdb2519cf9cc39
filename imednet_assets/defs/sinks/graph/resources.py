"""The graph destination as a Dagster resource: write settings plus where the server is.

Neo4j (`NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD`, `NEO4J_DATABASE`) is the production default;
FalkorDB (`FALKORDB_URL` = `redis://host:port`, `FALKORDB_GRAPH`) is used when only it is set.
Secrets (password, URIs that may hold credentials) come in through `dg.EnvVar` and never show in
reprs, logs or metadata.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from imednet_assets.defs.sinks.common import DestinationConfigError, WriteSettings
from imednet_assets.defs.sinks.graph.transport import (
    BoltTransport,
    FalkorDBTransport,
    GraphTransport,
)
from imednet_assets.settings import redact

SECRET_FIELDS = ("neo4j_password",)
URL_FIELDS = ("neo4j_uri", "falkordb_url")  # shown redacted (they may carry user:password@)
DEFAULT_GRAPH = "imednet"


class GraphDestination(WriteSettings):
    """A Neo4j or FalkorDB server to replay studies into, and how hard to push it."""

    batch_size: int = Field(default=1_000, ge=1, description="Rows per UNWIND batch.")
    neo4j_uri: str | None = Field(default=None, description="bolt:// or neo4j:// URI (EnvVar).")
    neo4j_user: str | None = Field(default=None, description="Neo4j user.")
    neo4j_password: str | None = Field(default=None, description="Neo4j password (EnvVar).")
    neo4j_database: str | None = Field(default=None, description="Neo4j database (default: the "
                                       "server's default database).")
    falkordb_url: str | None = Field(default=None, description="redis://host:port (EnvVar).")
    falkordb_graph: str = Field(default=DEFAULT_GRAPH, description="FalkorDB graph name.")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Connect timeout.")

    def transport(self) -> GraphTransport:
        """The configured transport, not yet opened (Neo4j wins when both are set)."""
        if self.neo4j_uri:
            return BoltTransport(self.neo4j_uri, self.neo4j_user, self.neo4j_password,
                                 self.neo4j_database, self.connect_timeout_s)
        if self.falkordb_url:
            return FalkorDBTransport(self.falkordb_url, self.falkordb_graph or DEFAULT_GRAPH,
                                     self.connect_timeout_s)
        raise DestinationConfigError(
            "graph destination: neither NEO4J_URI nor FALKORDB_URL is set")

    def __repr_args__(self) -> Any:
        # pydantic's repr would show the resolved password and credentials inside URIs
        for name, value in super().__repr_args__():
            if name in SECRET_FIELDS and value is not None:
                yield name, "***"
            elif name in URL_FIELDS and isinstance(value, str):
                yield name, redact(value)
            else:
                yield name, value


def from_env(environ: dict[str, str]) -> GraphDestination:
    """The resource for whichever server the environment names; secrets stay `dg.EnvVar`s."""
    if environ.get("NEO4J_URI"):
        return GraphDestination(
            neo4j_uri=dg.EnvVar("NEO4J_URI"),
            neo4j_user=dg.EnvVar("NEO4J_USER") if "NEO4J_USER" in environ else None,
            neo4j_password=dg.EnvVar("NEO4J_PASSWORD") if "NEO4J_PASSWORD" in environ else None,
            neo4j_database=environ.get("NEO4J_DATABASE") or None,
        )
    return GraphDestination(
        falkordb_url=dg.EnvVar("FALKORDB_URL"),
        falkordb_graph=environ.get("FALKORDB_GRAPH") or DEFAULT_GRAPH,
    )
