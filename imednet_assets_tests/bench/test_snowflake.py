"""The Snowflake benchmark on a small lake: one JSON line, and the rows it counts are real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imednet_assets_tests.defs.sinks.duckdb.test_assets import study_a


class _Lake:
    def __init__(self, root: Path) -> None:
        self.lake = root


def test_bench_loads_the_study_and_prints_one_json_line(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    study_a(_Lake(lake), "A")  # 4 records: 33 recordData entries, 3 + 1 form rows
    out = subprocess.run(
        [sys.executable, "-m", "imednet_assets.bench.snowflake", str(lake), "A", "--path", "ours"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.strip().splitlines()
    assert len(out) == 1
    line = json.loads(out[0])
    assert set(line) == {"path", "records", "rows", "seconds", "peak_rss_mb"}
    assert (line["path"], line["records"], line["rows"]) == ("ours", 4, 33 + 4)
    assert line["seconds"] > 0 and line["peak_rss_mb"] > 0
