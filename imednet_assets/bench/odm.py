"""Benchmark: one study's CDISC ODM 1.3.2 files (Snapshot and Transactional) from the lake, timed.

`python -m imednet_assets.bench.odm LAKE_ROOT STUDY` writes the study's two ODM files into a temp
dir through the ODM IO manager, one after the other as the ODM step does (lake read, DuckDB sort,
XML streaming, fsync, sha256 and swap included), and prints one JSON line: records, revisions,
form_data (FormData elements written, both files), audit_records, seconds (after imports),
seconds per kind, CPU seconds (user + system, every thread), peak RSS of this process (children
included) and the bytes per kind.
`--kinds snapshot` measures only one file; `--keep DIR` writes the files there;
`--memory-limit 128MB` sets DuckDB's memory for the sorts.
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
from imednet_assets.defs.sinks.odm.assets import KINDS
from imednet_assets.defs.sinks.odm.io_manager import OdmIOManager, OdmWrite
from imednet_assets.defs.sinks.odm.source import ENTITIES


def run(lake_root: Path, study: str, root: Path, kinds: list[str],
        memory_limit: str | None = None) -> dict[str, object]:
    """Write the study's ODM files; returns the counts and seconds per kind."""
    manager = OdmIOManager(root=str(root), **({"memory_limit": memory_limit} if memory_limit
                                              else {}))
    slices = {e: LakeSlice.read(lake_root, e, study, SCHEMAS[e]) for e in ENTITIES}
    forms, audits, seconds, sizes = 0, 0, {}, {}
    for kind in kinds:
        started = time.perf_counter()
        report = manager.write_file(OdmWrite(kind, study, slices), "bench")  # type: ignore[arg-type]
        seconds[kind] = round(time.perf_counter() - started, 3)
        forms += report.extra["form_data"]
        audits += report.extra.get("audit_records", 0)
        sizes[kind] = report.extra["bytes"]
    return {"records": slices["records"].num_rows,
            "revisions": slices["record_revisions"].num_rows, "form_data": forms,
            "audit_records": audits, "seconds_by_kind": seconds, "bytes_by_kind": sizes,
            "rows": forms}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_root", type=Path)
    parser.add_argument("study")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated kinds (default: snapshot,transactional)")
    parser.add_argument("--keep", type=Path, help="write the files here (default: a temp dir)")
    parser.add_argument("--path", default="ours", choices=["ours"],
                        help="the one path (as `imednet-assets bench` names destination paths)")
    parser.add_argument("--memory-limit", help="DuckDB's memory for the sorts (default: the IO "
                        "manager's)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="imednet-bench-odm-") as tmp:
        root = args.keep or Path(tmp)
        started, cpu = time.perf_counter(), cpu_seconds()
        counts = run(args.lake_root, args.study, root, kinds, args.memory_limit)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    peak = peak_rss_mb()
    print(json.dumps({**counts, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                      "peak_rss_mb": round(peak, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
