"""Where the SQL destination is: any SQLAlchemy URL; connects only after the server answered.

Set `url` with `dg.EnvVar("IMEDNET_ASSETS_SQL_URL")`: it may hold a password, so it is shown
redacted in every message, repr and metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from imednet_assets.defs.sinks.common import DestinationConfigError, WriteSettings
from imednet_assets.defs.sinks.sql import ddl
from imednet_assets.settings import redact

DESTINATION = "SQL database"
#: Added to the session's sql_mode on MySQL / MariaDB.
MYSQL_STRICT = (
    "SET SESSION sql_mode = TRIM(BOTH ',' FROM CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'))"
)


def _resolved(value: Any) -> str:
    # inside a run Dagster has replaced the EnvVar by its value; outside one it has not
    return (value.get_value() or "") if isinstance(value, dg.EnvVar) else (value or "")


class SqlDestination(WriteSettings):
    """A database behind a SQLAlchemy URL (PostgreSQL first; MySQL / MariaDB through pymysql,
    SQLite), plus the shared write knobs."""

    url: str = Field(
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pass@host/db or "
        "mysql+pymysql://user:pass@host/db (secret; use dg.EnvVar)."
    )
    db_schema: str | None = Field(
        default=None,
        description="Schema (MySQL: database) holding the tables, created if missing; default: "
        "the URL's.",
    )
    connect_timeout_s: int = Field(default=10, ge=1, description="Give up connecting after this.")

    def sa_url(self) -> sa.URL:
        """The URL; a bare `postgresql://` means psycopg 3 (the driver installed with us)."""
        url = sa.make_url(_resolved(self.url))
        return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url

    def secrets(self) -> list[str | None]:
        """The password as written, for `redact`."""
        try:
            return [sa.make_url(_resolved(self.url)).password]
        except sa.exc.ArgumentError:
            return [_resolved(self.url)]  # unparsable: hide all of it

    @property
    def address(self) -> str:
        """The URL without credentials: safe to show."""
        try:
            text = self.sa_url().render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            return "(unparsable URL)"
        return redact(text, self.secrets())

    def describe(self) -> str:
        return f"{DESTINATION} at {self.address}"

    def _connect_args(self, url: sa.URL) -> dict[str, Any]:
        if url.get_backend_name() == "postgresql":
            return {"connect_timeout": self.connect_timeout_s}
        if url.get_backend_name() in ddl.MYSQL_DIALECTS:
            # strict mode whatever the server's default: a value MySQL cannot store must fail
            # the write, not be truncated or zeroed with a warning
            return {"connect_timeout": self.connect_timeout_s, "charset": "utf8mb4",
                    "init_command": MYSQL_STRICT}
        return {}

    @contextmanager
    def open(self) -> Iterator[sa.Engine]:
        """An engine, after the server answered `SELECT 1` with these credentials (and the schema
        exists). Raises `DestinationConfigError` naming the redacted address when it did not,
        before any data moves; the engine's connections are closed on the way out."""
        try:
            url = self.sa_url()
            # NullPool: every write gets a fresh connection, nothing lingers between runs
            engine = sa.create_engine(
                url, poolclass=sa.pool.NullPool, connect_args=self._connect_args(url)
            )
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise DestinationConfigError(
                f"{self.describe()}: invalid URL: {self.clean(exc)}"
            ) from None
        if engine.dialect.name == "sqlite":
            _transactional_ddl(engine)
        try:
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text("SELECT 1"))
                    if self.db_schema and engine.dialect.name in ("postgresql",
                                                                  *ddl.MYSQL_DIALECTS):
                        conn.execute(sa.text(ddl.create_schema_sql(conn.dialect, self.db_schema)))
            except sa.exc.SQLAlchemyError as exc:
                raise DestinationConfigError(
                    f"{self.describe()}: cannot connect: {self.clean(exc)}"
                ) from None
            yield engine
        finally:
            engine.dispose()

    def clean(self, exc: BaseException) -> str:
        """An error as text without secrets, SQL or bound values (SQLAlchemy appends both)."""
        orig = getattr(exc, "orig", None)
        shown = orig if isinstance(orig, BaseException) else exc
        text = str(shown).split("\n[SQL:")[0].strip()
        return redact(f"{type(shown).__name__}: {text}", self.secrets())[:500]

    def __repr_args__(self) -> Any:
        # pydantic's repr would show the resolved URL with its password
        for name, value in super().__repr_args__():
            yield name, (self.address if name == "url" else value)


def _transactional_ddl(engine: sa.Engine) -> None:
    """pysqlite only opens a transaction before DML, so a CREATE or ALTER before it would commit
    on its own; SQLAlchemy's documented recipe: BEGIN explicitly (SQLite DDL is transactional)."""

    @sa.event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")
