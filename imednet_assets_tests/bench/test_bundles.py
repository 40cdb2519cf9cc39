"""The bundles benchmark on a small lake: one JSON line per path, and both paths write the same
bytes (the plain writers are what the bundles were before issue 9)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imednet_assets_tests.defs.sinks.bundles.conftest import Bundles
from imednet_assets_tests.defs.sinks.bundles.test_assets import hostile_study


def _bench(lake: Path, path: str, keep: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "imednet_assets.bench.bundles", str(lake), "A", "--path", path,
         "--keep", str(keep)],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0])


def test_both_paths_write_the_same_bundles_and_print_one_json_line(tmp_path: Path) -> None:
    bundles = Bundles(tmp_path)
    hostile_study(bundles)
    files = {}
    for path in ("ours", "plain"):
        line = _bench(bundles.lake, path, tmp_path / path)
        assert set(line) == {"path", "records", "rows", "seconds", "seconds_by_format",
                             "cpu_seconds", "peak_rss_mb"}
        assert (line["path"], line["records"], line["rows"]) == (path, 4, 3 * 4)
        assert set(line["seconds_by_format"]) == {"csv", "xlsx", "json"}
        assert line["seconds"] > 0 and line["peak_rss_mb"] > 0
        files[path] = {p.relative_to(tmp_path / path): p.read_bytes()
                       for p in sorted((tmp_path / path).rglob("*")) if p.is_file()}
    assert sorted(map(str, files["ours"])) == ["A/A.csv.zip", "A/A.jsonl.zip", "A/A.xlsx"]
    assert files["ours"] == files["plain"]
