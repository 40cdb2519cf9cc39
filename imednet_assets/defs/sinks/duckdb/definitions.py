"""DuckDB sink assets with their resource and IO manager bound (merged by the top level)."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from imednet_assets.defs.sinks.duckdb.assets import SINK, duckdb_assets
from imednet_assets.defs.sinks.duckdb.io_manager import DuckDBSinkIOManager
from imednet_assets.settings import duckdb_path


def duckdb_resources(database: str | None = None) -> dict[str, object]:
    """`duckdb` resource and `duckdb_io_manager` sharing one database file (default: settings)."""
    resource = DuckDBResource(database=database or str(duckdb_path()))
    return {"duckdb": resource, SINK.io_manager_key: DuckDBSinkIOManager(duckdb=resource)}


defs: dg.Definitions = SINK.definitions(duckdb_assets, duckdb_resources())
