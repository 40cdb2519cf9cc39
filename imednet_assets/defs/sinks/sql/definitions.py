"""The SQL destination, part of the definitions when `IMEDNET_ASSETS_SQL_URL` is set."""

from __future__ import annotations

import os

import dagster as dg

# The destination's modules (and SQLAlchemy) load only when it is built: an unconfigured
# destination costs the code location nothing at import.

URL_ENV = "IMEDNET_ASSETS_SQL_URL"
SCHEMA_ENV = "IMEDNET_ASSETS_SQL_SCHEMA"


def is_configured() -> bool:
    """Whether a SQLAlchemy URL for the destination is in the environment."""
    return bool(os.environ.get(URL_ENV))


def sql_resources(url: str | dg.EnvVar | None = None, schema: str | None = None,
                  **settings: object) -> dict[str, object]:
    """`sql_destination` and `sql_io_manager` (default: the URL from `IMEDNET_ASSETS_SQL_URL`,
    kept as an EnvVar so its password never enters run config or metadata)."""
    from imednet_assets.defs.sinks.sql.assets import SQL_IO_MANAGER_KEY
    from imednet_assets.defs.sinks.sql.io_manager import SqlSinkIOManager
    from imednet_assets.defs.sinks.sql.resources import SqlDestination

    destination = SqlDestination(
        url=url if url is not None else dg.EnvVar(URL_ENV),
        db_schema=schema if schema is not None else (os.environ.get(SCHEMA_ENV) or None),
        **settings,
    )
    return {
        "sql_destination": destination,
        SQL_IO_MANAGER_KEY: SqlSinkIOManager(destination=destination),
    }


def build_defs() -> dg.Definitions:
    """The SQL sink assets and their reconciliation check, with destination and IO manager."""
    from imednet_assets.defs.sinks.sql.assets import SINK, sql_assets
    from imednet_assets.defs.sinks.sql.checks import RECORD_CHECK

    return SINK.definitions(sql_assets, sql_resources(), RECORD_CHECK)
