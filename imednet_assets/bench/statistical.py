"""Benchmark: one study's statistical exports (SAS transport, SPSS, Stata) from the lake, timed.

`python -m imednet_assets.bench.statistical LAKE_ROOT STUDY` writes the study's three exports
into a temp dir through the statistical IO manager, one format after the other as the step does
(lake read, frames, pyreadstat, header stamps, zip, fsync, sha256 and swap included), and
prints one JSON line: path, records, rows (dataset rows, counted once per format), split_values
(texts written in pieces, all formats), seconds (after imports), seconds per format, CPU seconds
(user + system, every thread), peak RSS of this process (children included), bytes per format.
`--path ours` (the only path: accepted so the destinations bench can run it like the others);
`--formats xpt,dta` measures only some formats; `--keep DIR` writes the exports there.
pyreadstat writes a whole frame at a time: peak RSS follows the largest form table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from imednet_assets.bench.usage import cpu_seconds, peak_rss_mb
from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.statistical.formats import FORMATS
from imednet_assets.defs.sinks.statistical.io_manager import StatisticalIOManager, StatisticalWrite
from imednet_assets.defs.sinks.tabular import ENTITIES


def run(lake_root: Path, study: str, root: Path, formats: list[str]) -> dict[str, object]:
    """Write the study's exports; returns the counts, seconds and bytes per format."""
    manager = StatisticalIOManager(root=str(root))
    slices = {e: LakeSlice.read(lake_root, e, study, SCHEMAS[e]) for e in ENTITIES}
    rows, splits, seconds, sizes = 0, 0, {}, {}
    for fmt in formats:
        started = time.perf_counter()
        report = manager.write_export(StatisticalWrite(fmt, study, slices), "bench")  # type: ignore[arg-type]
        seconds[fmt] = round(time.perf_counter() - started, 3)
        rows += sum(report.rows.values())
        splits += int(report.extra["split_values"])
        sizes[fmt] = int(report.extra["bytes"])
    return {"records": slices["records"].num_rows, "rows": rows, "split_values": splits,
            "seconds_by_format": seconds, "bytes_by_format": sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_root", type=Path)
    parser.add_argument("study")
    parser.add_argument("--path", choices=("ours",), default="ours")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated formats (default: xpt,sav,dta)")
    parser.add_argument("--keep", type=Path, help="write the exports here (default: a temp dir)")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown formats: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="imednet-bench-statistical-") as tmp:
        root = args.keep or Path(tmp)
        started, cpu = time.perf_counter(), cpu_seconds()
        counts = run(args.lake_root, args.study, root, formats)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak = peak_rss_mb()
    print(json.dumps({"path": args.path, **counts, "seconds": round(seconds, 3),
                      "cpu_seconds": round(cpu, 3), "peak_rss_mb": round(peak, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
