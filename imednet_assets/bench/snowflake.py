"""Benchmark: one study from the lake into Snowflake (a local fakesnow server), timed.

`python -m imednet_assets.bench.snowflake LAKE_ROOT STUDY --path ours` starts its own server in a
temp dir, loads every Snowflake table family of STUDY through the sink's loader (staged Parquet +
COPY INTO, as the assets do), and prints one JSON line: path, records, rows (RECORDS_LONG rows +
form table rows), seconds (after imports and server start), peak RSS of this process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import snowflake.connector

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.snowflake import loader, sql
from imednet_assets.defs.sinks.snowflake.assets import TABLE_FAMILIES
from imednet_assets.defs.sinks.snowflake.resources import SnowflakeLoadSettings
from imednet_assets.defs.sinks.tabular import ENTITIES
from imednet_assets.local_servers.snowflake import LocalSnowflake

PATHS = ("ours",)
DATABASE = "IMEDNET_BENCH"
SCHEMA = "BENCH"


def run_ours(lake_root: Path, study: str, server: LocalSnowflake, work: Path) -> tuple[int, int]:
    """Load the study; returns (records in the lake, RECORDS_LONG + form table rows loaded)."""
    slices = {e: LakeSlice.read(lake_root, e, study, SCHEMAS[e]) for e in ENTITIES}
    settings = SnowflakeLoadSettings(manifest_path=str(work / "manifest.jsonl"))
    conn = snowflake.connector.connect(
        user="bench", password="bench", account="fakesnow", database=DATABASE, schema=SCHEMA,
        network_timeout=600, **server.connection_args())
    try:
        loader.ensure_stage_and_manifest(conn.cursor(), settings)
        run_id = str(uuid.uuid4())
        rows = 0
        for name, (tables, _) in TABLE_FAMILIES.items():
            write = loader.SnowflakeWrite(f"snowflake/{name}", study, slices, tables)
            report = loader.load_study(conn, write, settings, run_id=run_id,
                                       destination="Snowflake (bench)")
            rows += sum(n for t, n in report.rows.items()
                        if t == "RECORDS_LONG" or t.startswith(sql.FORM_TABLE_PREFIX))
    finally:
        conn.close()
    return slices["records"].num_rows, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_root", type=Path)
    parser.add_argument("study")
    parser.add_argument("--path", choices=PATHS, default="ours")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="imednet-bench-snowflake-") as tmp, LocalSnowflake(
        Path(tmp) / "server"
    ) as server:
        setup = snowflake.connector.connect(user="bench", password="bench", account="fakesnow",
                                            **server.connection_args())
        try:
            setup.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            setup.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
        finally:
            setup.close()
        started = time.perf_counter()
        records, rows = run_ours(args.lake_root, args.study, server, Path(tmp))
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"path": args.path, "records": records, "rows": rows,
                      "seconds": round(seconds, 3), "peak_rss_mb": round(peak, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
