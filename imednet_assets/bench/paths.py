"""The measured paths of the benchmark; each runs alone in a child process.

`python -m imednet_assets.bench.paths <path> <base_url> <study> [options]` prints one JSON line:
records, seconds and the child's peak RSS, so every path is measured on the same footing.
The `lake` path ingests every entity of the study into `--work-dir` and keeps it: the
destination benchmarks (`imednet_assets.bench.<destination>`) load from that lake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson

from imednet_assets.defs.results import materialization
from imednet_assets.demo import QUIET_CONSOLE

API_KEY = "bench-api-key"
SECURITY_KEY = "bench-security-key"
IMPORTS = {
    "ceiling": ["httpx"],
    "sdk": ["duckdb", "pandas", "imednet", "imednet.workflows.record_mapper"],
    "platform": ["duckdb", "dagster", "imednet_assets.definitions"],
    "lake": ["dagster", "imednet_assets.definitions"],
}
PLATFORM_ASSETS = (
    "imednet/forms",
    "imednet/variables",
    "imednet/records",
    "duckdb/records_long",
    "duckdb/form_tables",
)


def _headers() -> dict[str, str]:
    return {
        "x-api-key": API_KEY,
        "x-imn-security-key": SECURITY_KEY,
        "accept": "application/json",
    }


async def _ceiling(base_url: str, study: str, concurrency: int) -> int:
    """Raw concurrent fetch of every records page, bodies read and discarded: the physical limit."""
    import httpx

    url = f"{base_url}/api/v1/edc/studies/{study}/records"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=_headers(), limits=limits, timeout=60) as http:
        first = await http.get(url, params={"page": 0, "size": 500})
        first.raise_for_status()
        body = orjson.loads(first.content)
        total_pages = body["pagination"]["totalPages"]
        records = len(body["data"])
        semaphore = asyncio.Semaphore(concurrency)

        async def fetch(page: int) -> int:
            async with semaphore:
                response = await http.get(url, params={"page": page, "size": 500})
                response.raise_for_status()
                # no parsing: recordOid is once per record (recordId is in the sort echo too)
                return response.content.count(b'"recordOid"')

        counts = await asyncio.gather(*(fetch(p) for p in range(1, total_pages)))
    return records + sum(counts)


def run_ceiling(base_url: str, study: str, concurrency: int) -> int:
    return asyncio.run(_ceiling(base_url, study, concurrency))


def run_sdk(base_url: str, study: str, work_dir: Path) -> int:
    """What a user would otherwise write: SDK records + RecordMapper frame + DuckDB insert."""
    import duckdb
    from imednet import ImednetSDK
    from imednet.workflows.record_mapper import RecordMapper

    with ImednetSDK(
        api_key=API_KEY, security_key=SECURITY_KEY, base_url=base_url, retries=3, backoff_factor=0.5
    ) as sdk:
        frame = RecordMapper(sdk).dataframe(study, use_labels_as_columns=False)
    with duckdb.connect(str(work_dir / "sdk.duckdb")) as con:
        con.register("frame", frame)
        con.execute("CREATE OR REPLACE TABLE records AS SELECT * FROM frame")
        return con.execute("SELECT count(*) FROM records").fetchone()[0]


def prepare_platform(
    base_url: str, study: str, work_dir: Path, concurrency: int
) -> Callable[[], int]:
    """This platform: the study's records into the lake and DuckDB through Dagster. The instance
    is made before the clock starts (a deployment has one already); the returned call is timed."""
    os.environ.update(
        IMEDNET_BASE_URL=base_url,
        IMEDNET_API_KEY=API_KEY,
        IMEDNET_SECURITY_KEY=SECURITY_KEY,
    )
    import dagster as dg
    import duckdb

    from imednet_assets.definitions import defs
    from imednet_assets.defs.partitions import study_partitions

    # the same concurrency as the ceiling; the keys stay environment references
    imednet_config = {
        "concurrency": concurrency,
        "base_url": {"env": "IMEDNET_BASE_URL"},
        "api_key": {"env": "IMEDNET_API_KEY"},
        "security_key": {"env": "IMEDNET_SECURITY_KEY"},
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(study_partitions.name, [study])
    # the materialization alone: the asset checks are quality work on top, measured apart
    job = defs.resolve_job_def("imednet_all_job").get_subset(
        asset_selection={dg.AssetKey.from_user_string(k) for k in PLATFORM_ASSETS},
        asset_check_selection=set(),
    )

    def materialize() -> int:
        result = job.execute_in_process(
            partition_key=study,
            instance=instance,
            run_config={
                "resources": {"imednet": {"config": imednet_config}},
                **QUIET_CONSOLE,
            },
            raise_on_error=True,
        )
        assert result.success
        with duckdb.connect(str(work_dir / "imednet.duckdb"), read_only=True) as con:
            return con.execute(
                "SELECT count(DISTINCT record_id) FROM records_long WHERE study_key = ?", [study]
            ).fetchone()[0]

    return materialize


def prepare_lake(base_url: str, study: str, concurrency: int) -> Callable[[], int]:
    """Every ingest asset of the study into the lake under the data dir (kept afterwards)."""
    os.environ.update(
        IMEDNET_BASE_URL=base_url, IMEDNET_API_KEY=API_KEY, IMEDNET_SECURITY_KEY=SECURITY_KEY
    )
    import dagster as dg

    from imednet_assets.defs.ingest.assets import ingest_assets
    from imednet_assets.defs.lake.io_manager import LakeIOManager
    from imednet_assets.defs.resources import ImednetResource

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [study])
    resources = {
        "imednet": ImednetResource(
            base_url=base_url, api_key=API_KEY, security_key=SECURITY_KEY, concurrency=concurrency
        ),
        "lake_io_manager": LakeIOManager(),
    }

    def ingest() -> int:
        result = dg.materialize(
            ingest_assets, partition_key=study, instance=instance, resources=resources
        )
        assert result.success
        records = materialization(result, "imednet/records").metadata
        return int(records["dagster/row_count"].value)

    return ingest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", choices=sorted(IMPORTS))
    parser.add_argument("base_url")
    parser.add_argument("study")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--work-dir", type=Path, help="keep the data here (default: a temp dir)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.work_dir is None:
            temp = tempfile.TemporaryDirectory(prefix="imednet-bench-")
            work_dir = Path(stack.enter_context(temp))
        else:
            work_dir = args.work_dir.resolve()
            work_dir.mkdir(parents=True, exist_ok=True)
        # the definitions read the data dir when imported
        os.environ["IMEDNET_ASSETS_DATA_DIR"] = str(work_dir)
        # libraries are imported before the clock starts: every path is timed on its work alone
        for module in IMPORTS[args.path]:
            importlib.import_module(module)
        if args.path == "ceiling":
            work = partial(run_ceiling, args.base_url, args.study, args.concurrency)
        elif args.path == "sdk":
            work = partial(run_sdk, args.base_url, args.study, work_dir)
        elif args.path == "lake":
            work = prepare_lake(args.base_url, args.study, args.concurrency)
        else:
            work = prepare_platform(args.base_url, args.study, work_dir, args.concurrency)
        started = time.perf_counter()
        records = work()
        seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"path": args.path, "records": records, "seconds": seconds, "peak_rss_mb": peak_rss_mb}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
