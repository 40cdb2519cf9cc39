"""The rows each incremental merge wrote, kept beside a local slice for the destinations one or
a few merges behind: exactly the rows the merge changed, the newest merges only, outside the
slice's own files."""

import random

import pyarrow.parquet as pq
import pytest

from imednet_assets.defs.lake import local
from imednet_assets.defs.lake.slice import changes_dir
from imednet_assets_tests.defs.lake.lakes import LocalLake
from imednet_assets_tests.defs.lake.test_replay_and_crash import Upstream, write


def row_set(table) -> set[tuple]:
    return {tuple(sorted(r.items())) for r in table.to_pylist()}


@pytest.fixture
def lake(tmp_path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


def test_each_merge_keeps_exactly_the_rows_it_changed_for_the_newest_merges(
    lake, instance, monkeypatch
):
    monkeypatch.setattr(local, "CHANGES_KEPT", 2)
    upstream = Upstream("S1", random.Random(3), 30)
    write(lake, upstream, instance, incremental=False)
    tokens = [lake.read("records", "S1").manifest.token]
    assert lake.read("records", "S1").change_files(tokens[0]) is None  # nothing since

    for _ in range(3):
        before = lake.table("records", "S1")
        upstream.change(modify=3, add=1, move=1)
        assert write(lake, upstream, instance, incremental=True)["mode"] == "incremental"
        piece = lake.read("records", "S1")
        [kept] = piece.change_files(tokens[-1])
        # the new and changed rows, as the slice now holds them, and nothing else
        assert row_set(pq.read_table(kept)) == row_set(piece.dataset().to_table()) - row_set(
            before)
        assert all(f.suffix == ".parquet" and kept.parent not in f.parents
                   for f in piece.files)
        tokens.append(piece.manifest.token)

    piece = lake.read("records", "S1")
    assert len(piece.change_files(tokens[1])) == 2
    assert piece.change_files(tokens[0]) is None  # its first merge's rows are no longer kept
    assert len(list(changes_dir(piece.path).iterdir())) == 2

    upstream.change(modify=2, add=0, move=0)
    write(lake, upstream, instance, incremental=False)  # a full write: nothing to apply by key
    assert lake.read("records", "S1").change_files(tokens[-1]) is None
