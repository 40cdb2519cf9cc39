"""The ingest tests' simulator and environment fixtures, shared here, and the definitions the
change sensor selects from: the lake, and DuckDB when asked."""

from pathlib import Path

import dagster as dg

from imednet_assets.defs.automation.sensors import ALL_JOB_NAME
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets_tests.defs.ingest.conftest import (  # noqa: F401
    imednet_env,
    imednet_resource,
    sim,
)


def job_definitions(lake: Path, duckdb: Path | None = None, **knobs: int) -> dg.Definitions:
    """`imednet_all_job` over the lake's assets (and DuckDB's, given its file) with their
    resources: what the sensor selects from and its runs execute."""
    return dg.Definitions(
        assets=[*ingest_assets, *(duckdb_assets if duckdb else [])],
        jobs=[dg.define_asset_job(ALL_JOB_NAME, partitions_def=study_partitions)],
        resources={"imednet": imednet_resource(**knobs),
                   "lake_io_manager": LakeIOManager(root=str(lake)),
                   **(duckdb_resources(str(duckdb)) if duckdb else {})},
    )
