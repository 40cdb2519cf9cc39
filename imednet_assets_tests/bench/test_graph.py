"""The graph benchmark module: one JSON line per path, both paths at the same --limit, and the
nodes and relationships it reports are what the study holds."""

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
    records = [rec(1, "VS", {"weight": "1"}, subject=1, deleted=True)]  # never loaded
    records += [rec(i, "VS", {"weight": str(60 + i)}, subject=i % 3) for i in range(2, 9)]
    small_study(lake, "A", records)
    ours = _bench(lake, "ours", "--batch-size", "3")
    assert ours["path"] == "ours" and ours["records"] == 7
    nodes = 1 + 2 + 2 + 4 + 3 + 3 + 7  # study, sites, forms, variables, subjects, visits, records
    # HAS_SITE, HAS_FORM, HAS_VARIABLE, HAS_SUBJECT, ENROLLED_AT, HAS_VISIT, HAS_RECORD, INSTANCE_OF
    rels = 2 + 2 + 4 + 3 + 3 + 3 + 7 + 7
    assert ours["rows"] == nodes + rels
    assert ours["seconds"] > 0 and ours["peak_rss_mb"] > 0

    # --limit 2: records 2 and 3 (the first live ones by id), their subjects S-2, S-0 and visits
    ours = _bench(lake, "ours", "--limit", "2")
    assert (ours["records"], ours["rows"]) == (
        2, (1 + 2 + 2 + 4 + 2 + 2 + 2) + (2 + 2 + 4 + 2 + 2 + 2 + 2 + 2))
    seed = _bench(lake, "seed", "--limit", "2")
    # the seed's chain: 1 study, 2 subjects, 2 visits, 2 records and one relationship of each
    # of its three kinds per subject, visit and record
    assert (seed["path"], seed["records"], seed["rows"]) == ("seed", 2, 7 + 6)
    seed = _bench(lake, "seed")
    assert (seed["records"], seed["rows"]) == (7, (1 + 3 + 3 + 7) + (3 + 3 + 7))
