"""MongoDB sink assets with their resource and IO manager bound, when `MONGODB_URI` is set.

Env: `MONGODB_URI` (secret: read through `dg.EnvVar`, never copied into config), `MONGODB_DATABASE`
(default `imednet`). Collections: `records`, `subjects`.
"""

from __future__ import annotations

import os

import dagster as dg

# The destination's modules (and its client library) load only when it is built: an
# unconfigured destination costs the code location nothing at import.


URI_ENV = "MONGODB_URI"
DATABASE_ENV = "MONGODB_DATABASE"
DEFAULT_DATABASE = "imednet"


def is_configured() -> bool:
    """Whether this destination's settings are present."""
    return bool(os.environ.get(URI_ENV))


def mongodb_resources(
    uri: str | dg.EnvVar | None = None, database: str | None = None, **settings: object
) -> dict[str, object]:
    """`mongodb` resource and `mongodb_io_manager` sharing it (default: from the environment)."""
    from imednet_assets.defs.sinks.mongodb.assets import MONGODB_IO_MANAGER_KEY
    from imednet_assets.defs.sinks.mongodb.io_manager import MongoSinkIOManager
    from imednet_assets.defs.sinks.mongodb.resources import MongoDestination

    resource = MongoDestination(
        uri=uri if uri is not None else dg.EnvVar(URI_ENV),
        database=database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE,
        **settings,
    )
    return {"mongodb": resource, MONGODB_IO_MANAGER_KEY: MongoSinkIOManager(mongodb=resource)}


def build_defs() -> dg.Definitions:
    """The assets (group `mongodb`, pool `mongodb_writer`), their reconciliation check and their
    resources."""
    from imednet_assets.defs.sinks.mongodb.assets import SINK, mongodb_assets
    from imednet_assets.defs.sinks.mongodb.checks import RECORD_CHECK

    return SINK.definitions(mongodb_assets, mongodb_resources(), RECORD_CHECK)
