"""The MongoDB benchmark at a tiny size: both paths land every record of the study, once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from imednet_assets.bench.mongodb import main
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, write_study


@pytest.mark.parametrize("path", ["ours", "seed", "ours-replay"])
def test_bench_path_prints_one_json_line_with_every_record_landed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    lake = tmp_path / "lake"
    write_study(lake, "BENCH", ["F0", "F1"], [],
                [record(i, f"F{i % 2}", {"a.b": str(i), "$x": "y"}) for i in range(1, 1_201)])
    write_study(lake, "OTHER", ["F0"], [], [record(1, "F0", {"v": "1"})])

    assert main([str(lake), "BENCH", "--path", path]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = orjson.loads(lines[0])
    assert set(out) == {"path", "records", "rows", "seconds", "peak_rss_mb"}
    assert (out["path"], out["records"], out["rows"]) == (path, 1_200, 1_200)
    assert out["seconds"] > 0 and out["peak_rss_mb"] > 0
