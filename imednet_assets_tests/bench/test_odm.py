"""The ODM benchmark on a tiny lake: one JSON line, and the files it keeps are the ones the IO
manager writes (valid ODM 1.3.2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imednet_assets_tests.defs.sinks.odm.conftest import hostile_study, validate


def test_the_bench_prints_one_json_line_and_writes_both_files(tmp_path: Path) -> None:
    hostile_study(tmp_path / "lake", "A")
    out = subprocess.run(
        [sys.executable, "-m", "imednet_assets.bench.odm", str(tmp_path / "lake"), "A",
         "--keep", str(tmp_path / "odm")],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout.strip().splitlines()
    assert len(out) == 1
    line = json.loads(out[0])
    assert set(line) == {"records", "revisions", "form_data", "audit_records", "seconds",
                         "seconds_by_kind", "bytes_by_kind", "cpu_seconds", "peak_rss_mb",
                         "rows"}
    assert line["rows"] == line["form_data"]  # what `imednet-assets bench` reports as rows
    assert (line["records"], line["revisions"], line["form_data"], line["audit_records"]) == (
        5, 8, 4 + 9, 8)
    assert set(line["seconds_by_kind"]) == set(line["bytes_by_kind"]) == {
        "snapshot", "transactional"}
    assert line["seconds"] > 0 and line["peak_rss_mb"] > 0
    files = sorted(p.relative_to(tmp_path / "odm") for p in (tmp_path / "odm").rglob("*")
                   if p.is_file())
    assert [str(f) for f in files] == ["A/A.odm.xml", "A/A.transactional.odm.xml"]
    for f in files:
        validate(tmp_path / "odm" / f)
