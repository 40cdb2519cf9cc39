"""The benchmark end to end at a tiny size: every path counts every record, the table is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imednet_assets.cli import main

pytestmark = pytest.mark.slow  # minutes: collected early (see the suite's conftest)


def test_bench_measures_every_path_on_the_same_records(tmp_path: Path, capsys) -> None:
    output = tmp_path / "benchmarks.md"
    code = main([
        "bench", "--records", "400", "--latency-ms", "0", "--scale-records", "800",
        "--destinations", "", "--changed", "0.05", "--ui-studies", "2", "--ui-subjects", "2",
        "--scale-studies", "0",  # the scale-out stack has its own tests (test_scale_demo.py)
        "--output", str(output),
    ])  # fmt: skip
    assert code == 0
    text = output.read_text()
    rows = re.findall(r"^\| (ceiling|platform|sdk) \| ([\d,]+) \|", text, re.MULTILINE)
    assert [path for path, _ in rows] == ["ceiling", "platform", "sdk"]
    # 8 subjects x 50 records: all three paths saw exactly the study's records
    assert {count for _, count in rows} == {"400"}
    assert re.search(r"^\| 800 \| ", text, re.MULTILINE)
    assert "RSS ratio large/small:" in text
    # incremental: 5% of the 400 records modified; the sensor's run reads the records and the
    # revisions (a page and a count each) and materializes them and the 3 DuckDB tables of them
    [inc] = re.findall(r"^\| lake, duckdb \| 400 \| 20 \| .*$", text, re.MULTILINE)
    cells = [c.strip() for c in inc.strip("|").split("|")]
    assert int(cells[7]) == 4 < int(cells[6])
    assert cells[9] == "5 of 21"
    assert cells[10] == "10 requests"
    assert cells[12] == "10 for 10 entities"
    # launched through the webserver: one study as a run, two as one backfill, all green
    ui = re.findall(r"^\| (run|backfill) \| (\d+) \| [\d,]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x "
                    r"\| (\w+) \|$", text, re.MULTILINE)
    assert ui == [("run", "1", "yes"), ("backfill", "2", "yes")]
    assert f"written to {output}" in capsys.readouterr().out
