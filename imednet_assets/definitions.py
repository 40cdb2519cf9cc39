"""The one entry point: every asset, the IO managers, the API resource, jobs and sensors.

Loads without any environment variable set: secrets are `dg.EnvVar`s resolved at run time.
DuckDB, the lake and the file bundles are always there; every other destination joins when its
settings are in the environment (see `DESTINATIONS`).
"""

from __future__ import annotations

import dagster as dg

from imednet_assets.defs.automation.schedules import (
    study_full_refresh_schedule,
    study_reconcile_schedule,
)
from imednet_assets.defs.automation.sensors import (
    ALL_JOB_NAME,
    study_change_sensor,
    study_discovery_sensor,
)
from imednet_assets.defs.checks import definitions as checks_definitions
from imednet_assets.defs.checks.freshness import (
    lake_freshness_job,
    lake_freshness_schedule,
    lake_is_fresh,
)
from imednet_assets.defs.cuts.assets import data_cut_defs
from imednet_assets.defs.execution import run_executor
from imednet_assets.defs.ingest import definitions as ingest_definitions
from imednet_assets.defs.ingest.assets import LAKE_IO_MANAGER_KEY
from imednet_assets.defs.lake.io_manager import configured_lake_io_manager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.bundles import definitions as bundles_definitions
from imednet_assets.defs.sinks.duckdb import definitions as duckdb_definitions
from imednet_assets.defs.sinks.graph import definitions as graph_definitions
from imednet_assets.defs.sinks.mongodb import definitions as mongodb_definitions
from imednet_assets.defs.sinks.odm import definitions as odm_definitions
from imednet_assets.defs.sinks.snowflake import definitions as snowflake_definitions
from imednet_assets.defs.sinks.sql import definitions as sql_definitions
from imednet_assets.defs.sinks.statistical import definitions as statistical_definitions
from imednet_assets.runtime import freeze_loaded
from imednet_assets.settings import API_KEY_ENV, BASE_URL_ENV, SECURITY_KEY_ENV

# Only `defs` may be a Definitions at module scope (Dagster refuses several), hence a function.

#: Destinations besides DuckDB; each module has `is_configured()` (its settings are in the
#: environment) and `build_defs()`.
DESTINATIONS = {
    "graph": graph_definitions,
    "mongodb": mongodb_definitions,
    "snowflake": snowflake_definitions,
    "sql": sql_definitions,
    "bundles": bundles_definitions,
    "statistical": statistical_definitions,
    "odm": odm_definitions,
}


def configured_destinations() -> list[str]:
    """The destinations whose settings are present, in `DESTINATIONS` order."""
    return [name for name, module in DESTINATIONS.items() if module.is_configured()]


# every asset, one study per run (the CLI `demo` and the discovery sensor run it per study)
imednet_all_job = dg.define_asset_job(
    name=ALL_JOB_NAME,
    # the freshness check looks at every study at once: it has its own job and schedule (a data
    # cut is not materializable here: `data_cut_job` makes one, under a name)
    selection=dg.AssetSelection.all() - dg.AssetSelection.checks(lake_is_fresh),
    partitions_def=study_partitions,
    description="Everything for one study: API -> lake -> destinations.",
)


def _top_level_defs() -> dg.Definitions:
    """Jobs, sensors and the resources shared by every part (secrets from the environment)."""
    return dg.Definitions(
        # in the run's process, or on Celery workers (`IMEDNET_ASSETS_EXECUTOR`)
        executor=run_executor(),
        jobs=[imednet_all_job, lake_freshness_job],
        asset_checks=[lake_is_fresh],
        sensors=[study_discovery_sensor, study_change_sensor],
        schedules=[study_reconcile_schedule, study_full_refresh_schedule,
                   lake_freshness_schedule],
        resources={
            "imednet": ImednetResource(
                base_url=dg.EnvVar(BASE_URL_ENV),
                api_key=dg.EnvVar(API_KEY_ENV),
                security_key=dg.EnvVar(SECURITY_KEY_ENV),
            ),
            # a local folder, or s3://… with the keys as EnvVars (IMEDNET_ASSETS_LAKE_URL)
            LAKE_IO_MANAGER_KEY: configured_lake_io_manager(),
        },
    )


defs = dg.Definitions.merge(
    ingest_definitions.defs,
    duckdb_definitions.defs,
    data_cut_defs(),
    checks_definitions.defs,
    *(DESTINATIONS[name].build_defs() for name in configured_destinations()),
    _top_level_defs(),
)

freeze_loaded()  # last: everything above lives as long as the process
