"""The graph benchmark module: one JSON line per path, and the rows really landed."""

import subprocess
import sys

import orjson

from imednet_assets_tests.defs.sinks.graph.conftest import rec, small_study


def _bench(lake, path: str, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "imednet_assets.bench.graph", str(lake), "A", "--path", path,
         *extra], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = done.stdout.strip().splitlines()
    return orjson.loads(line)


def test_bench_paths(tmp_path) -> None:
    lake = tmp_path / "lake"
    small_study(lake, "A", [rec(i, "VS", {"weight": str(60 + i)}, subject=i % 3)
                            for i in range(1, 8)])
    ours = _bench(lake, "ours", "--batch-size", "3")
    assert ours["path"] == "ours" and ours["records"] == 7
    assert ours["rows"] == 1 + 2 + 2 + 4 + 3 + 3 + 7  # every node of the study
    assert ours["seconds"] > 0 and ours["peak_rss_mb"] > 0
    seed = _bench(lake, "seed", "--limit", "5")
    # the seed's chain: 1 study, the 3 subjects and 3 visits of the 5 records, 5 records
    assert (seed["path"], seed["records"], seed["rows"]) == ("seed", 5, 1 + 3 + 3 + 5)
