"""Benchmark: one study's file bundles (CSV zip, XLSX, JSON lines zip) from the lake, timed.

`python -m imednet_assets.bench.bundles LAKE_ROOT STUDY --path ours` writes the study's three
bundles into a temp dir through the bundles IO manager, one format after the other as the
bundles step does (lake read, write, fsync, sha256 and swap included), and prints one JSON
line: path, records, rows (form table rows, counted once per format), seconds (after imports),
seconds per format, CPU seconds (user + system, every thread: on a loaded machine the steadier
figure), peak RSS of this process (children included).
`--formats csv,xlsx` measures only some formats; `--keep DIR` writes the bundles there.

Paths: `ours` (XLSX rows and JSON lines rendered a batch at a time by Arrow, zip members
compressed on a second thread, the next lake batch read on another), `plain` (what the writers did
before issue 9, and still do for the values the rendered paths hand over: xlsxwriter cell by cell,
`json.dumps` row by row, zip members compressed in the writing thread). Both write the same bytes.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path

from imednet_assets.bench.usage import cpu_seconds, peak_rss_mb
from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.assets import FORMATS
from imednet_assets.defs.sinks.bundles.io_manager import BundleIOManager, BundleWrite
from imednet_assets.defs.sinks.tabular import ENTITIES

PATHS = ("ours", "plain")


def use_plain_writers() -> None:
    """Switch this process's bundle writers to the plain paths (see the module's docstring)."""
    from imednet_assets.defs.sinks.bundles import archive, jsonl, xlsx

    xlsx._Sheet._rows = lambda self, rows, first: self._by_cell(rows, first)  # type: ignore[method-assign]
    jsonl._lines = jsonl._lines_by_value
    archive.open_member = functools.partial(archive.open_member, pipelined=False)


def run_ours(lake_root: Path, study: str, root: Path, formats: list[str]
             ) -> tuple[int, int, dict[str, float]]:
    """Write the study's bundles; returns (records in the lake, form rows written, seconds per
    format)."""
    manager = BundleIOManager(root=str(root))
    slices = {e: LakeSlice.read(lake_root, e, study, SCHEMAS[e]) for e in ENTITIES}
    rows, seconds = 0, {}
    for fmt in formats:
        started = time.perf_counter()
        report = manager.write_bundle(BundleWrite(fmt, study, slices), "bench")  # type: ignore[arg-type]
        seconds[fmt] = round(time.perf_counter() - started, 3)
        rows += sum(report.rows.values())
    return slices["records"].num_rows, rows, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_root", type=Path)
    parser.add_argument("study")
    parser.add_argument("--path", choices=PATHS, default="ours")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated formats (default: all three)")
    parser.add_argument("--keep", type=Path, help="write the bundles here (default: a temp dir)")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    if args.path == "plain":
        use_plain_writers()
    with tempfile.TemporaryDirectory(prefix="imednet-bench-bundles-") as tmp:
        root = args.keep or Path(tmp)
        started, cpu = time.perf_counter(), cpu_seconds()
        records, rows, per_format = run_ours(args.lake_root, args.study, root, formats)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak = peak_rss_mb()
    print(json.dumps({"path": args.path, "records": records, "rows": rows,
                      "seconds": round(seconds, 3), "seconds_by_format": per_format,
                      "cpu_seconds": round(cpu, 3),
                      "peak_rss_mb": round(peak, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
