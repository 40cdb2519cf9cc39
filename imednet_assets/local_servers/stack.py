"""Every destination server on loopback at once, for `imednet-assets demo --local-servers`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import snowflake.connector
import sqlalchemy as sa

from imednet_assets.defs.sinks.graph import definitions as graph_definitions
from imednet_assets.defs.sinks.mongodb import definitions as mongodb_definitions
from imednet_assets.defs.sinks.snowflake import definitions as snowflake_definitions
from imednet_assets.defs.sinks.sql import definitions as sql_definitions
from imednet_assets.local_servers.falkordb import FalkorServer
from imednet_assets.local_servers.mongodb import NxServer
from imednet_assets.local_servers.postgres import admin_url
from imednet_assets.local_servers.snowflake import LocalSnowflake

SQL_DATABASE = "imednet_demo"
SNOWFLAKE_DATABASE = "IMEDNET"
SNOWFLAKE_SCHEMA = "DEMO"


def _snowflake_env(server: LocalSnowflake) -> dict[str, str]:
    env = {
        "SNOWFLAKE_ACCOUNT": "fakesnow",
        "SNOWFLAKE_USER": "demo",
        "SNOWFLAKE_PASSWORD": "demo-password",
        "SNOWFLAKE_DATABASE": SNOWFLAKE_DATABASE,
        "SNOWFLAKE_SCHEMA": SNOWFLAKE_SCHEMA,
        "SNOWFLAKE_HOST": "localhost",
        "SNOWFLAKE_PORT": str(server.port),
        "SNOWFLAKE_PROTOCOL": "http",
    }
    with snowflake.connector.connect(
        account="fakesnow", user="demo", password="demo-password", **server.connection_args()
    ) as conn:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {SNOWFLAKE_DATABASE}")
        conn.cursor().execute(
            f"CREATE SCHEMA IF NOT EXISTS {SNOWFLAKE_DATABASE}.{SNOWFLAKE_SCHEMA}"
        )
    return env


def _postgres_url() -> str:
    """`imednet_demo` on the local PostgreSQL, created when missing and kept for looking at."""
    admin = admin_url()
    engine = sa.create_engine(admin, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": SQL_DATABASE}
            ).first()
            if exists is None:
                conn.execute(sa.text(f'CREATE DATABASE "{SQL_DATABASE}"'))
    finally:
        engine.dispose()
    return admin.set(database=SQL_DATABASE).render_as_string(hide_password=False)


@contextlib.contextmanager
def local_destinations() -> Iterator[list[str]]:
    """Start a server for every destination the environment does not configure (each
    destination's `is_configured()`), point the environment at it, and yield what was started.
    MongoDB, Snowflake and the graph (data in temp dirs) live only as long as the context; the
    PostgreSQL database `imednet_demo` is kept for looking at."""
    started: list[str] = []
    added: list[str] = []

    def point(env: dict[str, str], what: str) -> None:
        os.environ.update(env)
        added.extend(env)
        started.append(what)

    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [os.environ.pop(name, None) for name in added])
        if not mongodb_definitions.is_configured():
            nx = NxServer(Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nx-"))))
            nx.start()
            stack.callback(nx.stop)
            point({"MONGODB_URI": nx.uri}, f"MongoDB (nx-27017) at {nx.uri}")
        if not snowflake_definitions.is_configured():
            snow = stack.enter_context(LocalSnowflake())
            point(_snowflake_env(snow), f"Snowflake (fakesnow) at localhost:{snow.port}")
        if not graph_definitions.is_configured():
            falkor = stack.enter_context(FalkorServer())
            point({"FALKORDB_URL": falkor.url}, f"graph (FalkorDB) at {falkor.url}")
        if not sql_definitions.is_configured():
            url = _postgres_url()
            point({"IMEDNET_ASSETS_SQL_URL": url}, f"PostgreSQL database {SQL_DATABASE}")
        yield started
