"""The statistical exports benchmark on a tiny lake: one JSON line, and the files it keeps are
the ones the Dagster asset writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imednet_assets_tests.defs.sinks.statistical.conftest import Exports, hostile_study


def test_prints_one_json_line_and_writes_what_the_assets_write(tmp_path: Path) -> None:
    exports = Exports(tmp_path)
    hostile_study(exports.lake)
    keep = tmp_path / "kept"
    out = subprocess.run(
        [sys.executable, "-m", "imednet_assets.bench.statistical", str(exports.lake), "A",
         "--keep", str(keep)],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip().splitlines()
    assert len(out) == 1
    line = json.loads(out[0])
    assert set(line) == {"path", "records", "rows", "split_values", "seconds_by_format",
                         "bytes_by_format", "seconds", "cpu_seconds", "peak_rss_mb"}
    assert (line["records"], line["rows"], line["split_values"]) == (4, 3 * 6, 3 + 1)
    assert set(line["seconds_by_format"]) == {"xpt", "sav", "dta"}
    assert line["seconds"] > 0 and line["peak_rss_mb"] > 0
    exports.run("A")
    kept = {str(p.relative_to(keep)): p.read_bytes() for p in sorted(keep.rglob("*"))
            if p.is_file()}
    assert kept == exports.files()
