"""The atomic swap: a writer killed midway leaves the old bundle and a temporary folder that the
next writer sweeps; a bundle root that cannot be written is a configuration error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.io_manager import (
    BundleIOManager,
    BundleWrite,
    stale_temporaries,
)
from imednet_assets.defs.sinks.common import DestinationConfigError
from imednet_assets.defs.sinks.tabular import ENTITIES
from imednet_assets_tests.defs.sinks.bundles.checks import check_csv
from imednet_assets_tests.defs.sinks.bundles.conftest import Bundles
from imednet_assets_tests.defs.sinks.bundles.test_assets import hostile_study

# a writer that stops for good after its first form file, until it is killed
KILLED_WRITER = """
import signal, sys
from pathlib import Path
from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles import csv_zip
from imednet_assets.defs.sinks.bundles.io_manager import BundleIOManager, BundleWrite
from imednet_assets.defs.sinks.tabular import ENTITIES

lake, root, marker = map(Path, sys.argv[1:4])

def hang(name):
    marker.write_text(name)
    signal.pause()

csv_zip._after_member = hang
slices = {e: LakeSlice.read(lake, e, "A", SCHEMAS[e]) for e in ENTITIES}
BundleIOManager(root=str(root)).write(BundleWrite("csv", "A", slices))
"""


def _slices(bundles: Bundles) -> dict[str, LakeSlice]:
    return {e: LakeSlice.read(bundles.lake, e, "A", SCHEMAS[e]) for e in ENTITIES}


def test_a_killed_writer_leaves_the_old_bundle_and_the_next_one_sweeps(
    bundles: Bundles, tmp_path: Path
) -> None:
    hostile_study(bundles)
    manager = BundleIOManager(root=str(bundles.root))
    manager.write(BundleWrite("csv", "A", _slices(bundles)))
    target = bundles.path("A", "csv")
    before = target.read_bytes()

    hostile_study(bundles, extra="7")
    marker = tmp_path / "writing"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(bundles.lake), str(bundles.root), str(marker)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the writer ended before it hung"
            assert time.monotonic() < deadline, "the writer never reached its first form"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == before  # the old bundle, whole
    left = stale_temporaries(target)
    assert len(left) == 1 and (left[0] / target.name).exists()  # the half-written file

    metadata = manager.write(BundleWrite("csv", "A", _slices(bundles)))
    assert stale_temporaries(target) == []
    assert sorted(os.listdir(target.parent)) == [target.name]
    assert metadata["unchanged"] is False
    check_csv(target, bundles.lake_tables("A"))


def test_unwritable_root_raises_a_configuration_error_without_reading_the_lake(
    bundles: Bundles, tmp_path: Path
) -> None:
    hostile_study(bundles)
    slices = _slices(bundles)
    # a study whose lake files are gone would fail the moment they are read: they are not
    for lake in slices.values():
        lake.files = [tmp_path / "missing.parquet"]
    blocker = tmp_path / "a-file"
    blocker.write_text("where the bundle root should be a folder")
    with pytest.raises(DestinationConfigError) as err:
        BundleIOManager(root=str(blocker / "bundles")).write(BundleWrite("xlsx", "A", slices))
    assert str(err.value) == (
        f"file bundles at {blocker / 'bundles'}: cannot write the folder of study A: "
        "NotADirectoryError: Not a directory")
