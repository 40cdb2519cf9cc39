"""Two ways to send the same Cypher: Neo4j over Bolt (the production default) and FalkorDB over
its native Redis protocol. A transport knows its dialect, its redacted address and which of its
errors are worth a retry; the writer knows nothing else about the server.

`open()` checks the server is reachable and accepts the credentials before any data moves, and
raises `DestinationConfigError` naming the destination and its redacted address otherwise.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from imednet_assets.defs.sinks.common import DestinationConfigError, error_detail
from imednet_assets.defs.sinks.graph.cypher import FALKORDB, NEO4J
from imednet_assets.settings import redact


class GraphTransport(Protocol):
    """What the writer needs from a graph server."""

    dialect: str
    #: e.g. "Neo4j at bolt://host:7687 (database neo4j)": no credentials, for every message.
    destination: str
    #: errors a retry may cure (connection lost, server busy); others fail the batch at once.
    transient: tuple[type[BaseException], ...]
    #: every error the client may raise (turned into a clear DestinationError by the writer).
    errors: tuple[type[BaseException], ...]
    secrets: tuple[str | None, ...]
    #: whether a string with a NUL character arrives intact (the writer refuses it up front if not)
    carries_nul: bool

    def open(self) -> None: ...

    def run(self, query: str, params: Mapping[str, Any]) -> list[list[Any]]: ...

    def close(self) -> None: ...


def _config_error(destination: str, exc: BaseException, secrets: tuple[str | None, ...]) -> (
    DestinationConfigError
):
    detail = error_detail(exc, secrets, 300)
    return DestinationConfigError(f"{destination} cannot be used: {detail}")


class BoltTransport:
    """Neo4j 5 (or anything speaking Bolt) through the official `neo4j` driver.

    One driver per transport, sessions per query; each query is one auto-commit transaction, so a
    batch is written whole or not at all. The driver's own retry loop (`execute_write`) is not
    used: the writer's retries with backoff are the only ones, and they name the batch.
    `dialect` is Neo4j's unless the server behind Bolt is another (FalkorDB's Bolt listener).
    """

    carries_nul = True  # Bolt sends strings length-prefixed

    def __init__(
        self, uri: str, user: str | None, password: str | None, database: str | None = None,
        connect_timeout_s: float = 10.0, dialect: str = NEO4J,
    ) -> None:
        import neo4j.exceptions as nx

        self.dialect = dialect
        self._uri, self._user, self._password = uri, user, password
        self._database = database or None
        self._timeout = connect_timeout_s
        self._driver: Any = None
        self.secrets = (password, uri)
        where = f" (database {self._database})" if self._database else ""
        self.destination = f"Neo4j at {redact(uri)}{where}"
        self.transient = (nx.ServiceUnavailable, nx.SessionExpired, nx.TransientError, OSError)
        self.errors = (nx.Neo4jError, nx.DriverError, OSError)

    def open(self) -> None:
        import neo4j

        auth = (self._user or "", self._password or "") if self._user or self._password else None
        try:
            self._driver = neo4j.GraphDatabase.driver(
                self._uri, auth=auth, connection_timeout=self._timeout,
                connection_acquisition_timeout=self._timeout * 2, max_connection_pool_size=4,
            )
            self._driver.verify_connectivity()
        except Exception as exc:  # any failure here means: this server cannot be used
            self.close()
            raise _config_error(self.destination, exc, self.secrets) from None

    def run(self, query: str, params: Mapping[str, Any]) -> list[list[Any]]:
        with self._driver.session(database=self._database) as session:
            return [list(record.values()) for record in session.run(query, dict(params))]

    def close(self) -> None:
        if self._driver is not None:
            with contextlib.suppress(Exception):
                self._driver.close()
            self._driver = None


class ParameterError(ValueError):
    """A parameter FalkorDB's text header cannot carry."""


# JSON escapes FalkorDB's string literals do not know (`\u00XX` stays literal text there); an even
# run of backslashes before them is escaped backslashes, so the escape itself is real.
_CONTROL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u00([01][0-9a-f])")


def _raw_control(match: re.Match[bytes]) -> bytes:
    code = int(match.group(2), 16)
    if code == 0:
        raise ParameterError("a string holds a NUL character, which FalkorDB cannot store")
    return match.group(1) + bytes([code])


def falkordb_params(params: Mapping[str, Any]) -> str:
    """The `CYPHER name=value ...` header FalkorDB takes parameters in, encoded by orjson.

    The client's own encoder walks every value in Python (most of the writer's time on a large
    study); JSON is FalkorDB's literal syntax for numbers, strings, booleans, null and lists once
    the escapes it lacks (JSON's `\\u00XX` for control characters) are sent raw. Maps are not
    supported (JSON quotes their keys); the writer sends rows as lists.
    """
    parts = [b"CYPHER"]
    for name, value in params.items():
        if not name.isidentifier():
            raise ParameterError(f"parameter name {name!r} is not an identifier")
        text = orjson.dumps(value)
        if b'{"' in text:  # outside strings a quote is never escaped: this is a map key
            raise ParameterError(f"parameter {name!r} holds a map; send lists")
        if b"\\u00" in text:
            text = _CONTROL.sub(_raw_control, text)
        parts.append(name.encode() + b"=" + text)
    return (b" ".join(parts) + b" ").decode()


class FalkorDBTransport:
    """FalkorDB through its Python client (`GRAPH.QUERY` over the Redis protocol); parameters
    are encoded by `falkordb_params`."""

    dialect = FALKORDB
    carries_nul = False  # the query text is a C string on the server: a NUL ends it

    def __init__(self, url: str, graph: str, connect_timeout_s: float = 10.0) -> None:
        import redis.exceptions as rx

        self._url, self._graph_name, self._timeout = url, graph, connect_timeout_s
        self._db: Any = None
        self._graph: Any = None
        self.secrets = (url,)
        self.destination = f"FalkorDB at {redact(url)} (graph {graph})"
        # BusyLoadingError (server replaying its AOF after a restart) is a ConnectionError.
        self.transient = (rx.ConnectionError, rx.TimeoutError, rx.TryAgainError)
        self.errors = (rx.RedisError, OSError, ParameterError)

    def open(self) -> None:
        from falkordb import FalkorDB
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            # no hidden client retries: the writer's own (with backoff, naming the batch) govern
            self._db = FalkorDB.from_url(
                self._url, socket_connect_timeout=self._timeout, retry=Retry(NoBackoff(), 0)
            )
            self._db.list_graphs()  # checks reachability, credentials and the graph module
            self._graph = self._db.select_graph(self._graph_name)
        except Exception as exc:  # any failure here means: this server cannot be used
            self.close()
            raise _config_error(self.destination, exc, self.secrets) from None

    def run(self, query: str, params: Mapping[str, Any]) -> list[list[Any]]:
        return self._graph.query(falkordb_params(params) + query).result_set

    def close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.connection.close()
            self._db = self._graph = None
