"""The benchmark end to end at a tiny size: every path counts every record, the table is written."""

from __future__ import annotations

import re
from pathlib import Path

from imednet_assets.cli import main


def test_bench_measures_every_path_on_the_same_records(tmp_path: Path, capsys) -> None:
    output = tmp_path / "benchmarks.md"
    code = main([
        "bench", "--records", "400", "--latency-ms", "0", "--scale-records", "800",
        "--destinations", "",
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
    assert f"written to {output}" in capsys.readouterr().out
