"""Bounded memory: writing both ODM files of a 200,000-record study (400,000 revisions) takes
about the peak RSS of a 2,000-record one, each measured in its own process by the bench module.

Nothing but the open tags and one record's elements is held by the writer; DuckDB sorts under
its memory limit (128 MB) and spills beyond. The bound allows the limit plus headroom; growing
with the study would break it (before the sorts were bounded, 200,000 records took ~220 MB
more than 2,000).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imednet_assets_tests.defs.sinks.odm.conftest import synthetic_study

pytestmark = pytest.mark.slow  # minutes: collected early (see the suite's conftest)


def _peak_rss_mb(lake: Path) -> tuple[float, dict]:
    out = subprocess.run(
        [sys.executable, "-m", "imednet_assets.bench.odm", str(lake), "B"],
        capture_output=True, text=True, timeout=600, check=True).stdout
    line = json.loads(out.strip().splitlines()[-1])
    return line["peak_rss_mb"], line


def test_a_hundred_times_larger_study_is_written_in_about_the_same_memory(
        tmp_path: Path) -> None:
    synthetic_study(tmp_path / "small", "B", 2_000)
    synthetic_study(tmp_path / "large", "B", 200_000)
    small, _ = _peak_rss_mb(tmp_path / "small")
    large, line = _peak_rss_mb(tmp_path / "large")
    assert (line["records"], line["audit_records"]) == (200_000, 400_000)
    assert large < small + 160, (small, large)
