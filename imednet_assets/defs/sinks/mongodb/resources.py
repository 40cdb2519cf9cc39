"""Where the MongoDB destination is and how hard to push it; connects only after a ping answered.

Set `uri` with `dg.EnvVar("MONGODB_URI")`: it may hold credentials, so it is shown redacted in
every message, repr and metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, OperationFailure
from pymongo.errors import ServerSelectionTimeoutError as NoServer
from pymongo.uri_parser import parse_uri

from imednet_assets.defs.sinks.common import DestinationConfigError, WriteSettings
from imednet_assets.settings import redact

DESTINATION = "MongoDB"


class MongoDestination(WriteSettings):
    """A MongoDB (or wire-compatible) server and database, plus the shared write knobs."""

    uri: str = Field(description="mongodb:// URI, credentials included (secret; use dg.EnvVar).")
    database: str = Field(default="imednet", description="Database holding the collections.")
    server_selection_timeout_ms: int = Field(
        default=5_000, ge=1, description="How long to wait for a server before giving up."
    )

    def resolved_uri(self) -> str:
        # inside a run Dagster has replaced the EnvVar by its value; outside one it has not
        value = self.uri
        return (value.get_value() or "") if isinstance(value, dg.EnvVar) else value

    def secrets(self) -> list[str | None]:
        """The password (and the URI itself) as written, for `redact`."""
        uri = self.resolved_uri()
        try:
            password = parse_uri(uri, validate=False).get("password")
        except (ConfigurationError, ValueError):
            password = None
        return [password]

    @property
    def address(self) -> str:
        """The URI without credentials: safe to show."""
        return redact(self.resolved_uri(), self.secrets())

    def describe(self) -> str:
        return f"{DESTINATION} at {self.address} (database {self.database})"

    @contextmanager
    def open(self) -> Iterator[Database]:
        """The database, after the server answered a ping with these credentials.

        Raises `DestinationConfigError` (naming the redacted address) when it does not, before any
        data moves; the client is closed on the way out whatever happens.
        """
        try:
            client: MongoClient = MongoClient(
                self.resolved_uri(),
                serverSelectionTimeoutMS=self.server_selection_timeout_ms,
                connectTimeoutMS=self.server_selection_timeout_ms,
                appname="imednet-assets",
            )
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise DestinationConfigError(
                f"{self.describe()}: invalid URI: {redact(str(exc), self.secrets())[:300]}"
            ) from None
        try:
            self._ping(client)
            yield client[self.database]
        finally:
            client.close()

    def _ping(self, client: MongoClient) -> None:
        try:
            client.admin.command("ping")
        except NoServer:
            seconds = self.server_selection_timeout_ms / 1000
            raise DestinationConfigError(
                f"{self.describe()} is unreachable: no server answered within {seconds:g} s"
            ) from None
        except Exception as exc:  # noqa: BLE001 - auth handshakes fail in driver-specific ways
            # OperationFailure (code 18) from MongoDB; a server without auth may break the
            # handshake instead: either way the credentials or the server are not usable
            text = str(exc.details.get("errmsg", exc)) if isinstance(exc, OperationFailure) and \
                exc.details else str(exc)
            detail = redact(f"{type(exc).__name__}: {text}", self.secrets())[:300]
            raise DestinationConfigError(
                f"{self.describe()} refused the connection or the credentials: {detail}"
            ) from None

    def __repr_args__(self) -> Any:
        # pydantic's repr would show the resolved URI, credentials included
        for name, value in super().__repr_args__():
            yield name, (self.address if name == "uri" else value)
