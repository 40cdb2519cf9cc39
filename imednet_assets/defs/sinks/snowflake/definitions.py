"""Snowflake destination definitions, built from the environment (merged by the top level when
`SNOWFLAKE_ACCOUNT` is set). Secrets (password, private key) only ever go through `dg.EnvVar`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg

# The destination's modules (and the Snowflake connector) load only when it is built: an
# unconfigured destination costs the code location nothing at import.
if TYPE_CHECKING:
    from imednet_assets.defs.sinks.snowflake.resources import (
        SnowflakeConnection,
        SnowflakeLoadSettings,
    )

ACCOUNT_ENV = "SNOWFLAKE_ACCOUNT"
_PLAIN = {"user": "SNOWFLAKE_USER", "database": "SNOWFLAKE_DATABASE",
          "schema": "SNOWFLAKE_SCHEMA", "warehouse": "SNOWFLAKE_WAREHOUSE",
          "role": "SNOWFLAKE_ROLE"}
_SECRETS = {"password": "SNOWFLAKE_PASSWORD", "private_key": "SNOWFLAKE_PRIVATE_KEY",
            "private_key_password": "SNOWFLAKE_PRIVATE_KEY_PASSWORD"}
# a local server (fakesnow) or a proxy: host, port, protocol
_LOCAL = {"host": "SNOWFLAKE_HOST", "port": "SNOWFLAKE_PORT", "protocol": "SNOWFLAKE_PROTOCOL"}


def is_configured() -> bool:
    """Whether a Snowflake account is named in the environment."""
    return bool(os.environ.get(ACCOUNT_ENV))


def connection_from_env() -> SnowflakeConnection:
    """The Snowflake connection the env describes; only variables that are set are used."""
    from imednet_assets.defs.sinks.snowflake.resources import SnowflakeConnection

    fields: dict[str, object] = {"account": dg.EnvVar(ACCOUNT_ENV), "autocommit": True,
                                 "login_timeout": 30, "network_timeout": 300}
    fields.update({k: dg.EnvVar(v) for k, v in {**_PLAIN, **_SECRETS}.items() if os.environ.get(v)})
    extra: dict[str, object] = {k: os.environ[v] for k, v in _LOCAL.items() if os.environ.get(v)}
    if "port" in extra:
        extra["port"] = int(str(extra["port"]))
    if extra:
        fields["additional_snowflake_connection_args"] = extra
    return SnowflakeConnection(**fields)  # type: ignore[arg-type]


def snowflake_resources(
    connection: SnowflakeConnection | None = None, load: SnowflakeLoadSettings | None = None
) -> dict[str, object]:
    """The `snowflake_io_manager` and the `snowflake` connection its check reads through, one
    connection for both (default: connection and stage from the env)."""
    from imednet_assets.defs.sinks.snowflake.assets import SNOWFLAKE_IO_MANAGER_KEY
    from imednet_assets.defs.sinks.snowflake.io_manager import SnowflakeSinkIOManager
    from imednet_assets.defs.sinks.snowflake.resources import SnowflakeLoadSettings

    load = load or SnowflakeLoadSettings(stage=os.environ.get("SNOWFLAKE_STAGE") or "IMEDNET_STAGE")
    connection = connection or connection_from_env()
    return {"snowflake": connection,
            SNOWFLAKE_IO_MANAGER_KEY: SnowflakeSinkIOManager(snowflake=connection, load=load)}


def build_defs() -> dg.Definitions:
    """The Snowflake assets (group `snowflake`, pool `snowflake_writer`), their reconciliation
    check and their IO manager."""
    from imednet_assets.defs.sinks.snowflake.assets import SINK, snowflake_assets
    from imednet_assets.defs.sinks.snowflake.checks import RECORD_CHECK

    return SINK.definitions(snowflake_assets, snowflake_resources(), RECORD_CHECK)
