"""The incremental merge of changed rows into a slice's folders: the order it writes, and the
folders it reads ahead while the changes arrive."""

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from imednet_assets.defs.lake import merge
from imednet_assets.defs.lake.files import FileRoller
from imednet_assets.defs.lake.merge import SliceMerger, plan_merge, replace_by_key

SCHEMA = pa.schema([("study_key", pa.string()), ("form_key", pa.string()),
                    ("record_id", pa.int64()), ("value", pa.string()),
                    ("date_modified", pa.timestamp("ms"))])
OLD, NEW = datetime(2024, 1, 1), datetime(2024, 1, 2)


def table(rows: list[tuple[str, int, str, datetime]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"study_key": "S1", "form_key": f, "record_id": i, "value": v, "date_modified": d}
         for f, i, v, d in rows], schema=SCHEMA)


def test_replace_by_key_drops_the_given_keys_and_sorts_what_is_left_with_the_new_rows():
    # the old rows come in two chunks and out of order (files of one folder need not be)
    old = pa.concat_tables([table([("A", 5, "a5", OLD), ("A", 1, "a1", OLD)]),
                            table([("A", 3, "a3", OLD), ("A", 9, "a9", OLD)])])
    new = table([("A", 3, "a3 new", NEW), ("A", 7, "a7", NEW)])
    # 9 left this folder (its record moved to another form): dropped without a new row here
    merged = replace_by_key(old, new, "record_id", pa.chunked_array([[3, 7, 9]]))
    assert merged.to_pylist() == table([("A", 1, "a1", OLD), ("A", 3, "a3 new", NEW),
                                        ("A", 5, "a5", OLD), ("A", 7, "a7", NEW)]).to_pylist()


def live_slice(root: Path, rows: pa.Table) -> Path:
    """A live slice of `rows`, one folder per form, written as the lake writes them."""
    live = root / "live"
    for form in sorted(set(rows.column("form_key").to_pylist())):
        part = rows.filter(pc.equal(rows.column("form_key"), form))
        roller = FileRoller(live / f"form_key={form}", SCHEMA, "record_id", 100, 4)
        for batch in part.to_batches():
            roller.write(batch)
        roller.close(write_empty=False)
    return live


@pytest.mark.parametrize("budget", [merge.READ_AHEAD_BYTES, 0])
def test_folders_read_ahead_are_rewritten_once_and_folders_left_alone_keep_their_files(
    tmp_path, monkeypatch, budget
):
    held = table([("A", 1, "a1", OLD), ("A", 2, "a2", OLD), ("B", 3, "b3", OLD),
                  ("C", 4, "c4", OLD)])
    live = live_slice(tmp_path, held)
    reads: list[str] = []
    read_folder = merge.read_folder

    def counted(folder: Path, schema: pa.Schema) -> pa.Table:
        reads.append(folder.name)
        return read_folder(folder, schema)

    monkeypatch.setattr(merge, "read_folder", counted)
    monkeypatch.setattr(merge, "READ_AHEAD_BYTES", budget)
    # B's row comes again unchanged (the read overlaps the previous one): B is read ahead,
    # then not rewritten
    incoming = table([("A", 2, "a2 new", NEW), ("B", 3, "b3", OLD), ("A", 5, "a5", NEW)])
    staged = tmp_path / "staged"
    with ThreadPoolExecutor(max_workers=1) as reader:
        merger = SliceMerger(live, staged, SCHEMA, "record_id", "form_key", 100, 4,
                             reader=reader)
        for batch in incoming.to_batches(max_chunksize=1):
            merger.read_ahead(batch)
        plan = plan_merge(incoming, held.select(["record_id", "date_modified", "form_key"]),
                          key="record_id", watermark="date_modified", split_by="form_key")
        merger.write(plan, append_only=False)
        merger.discard_reads()

    assert plan.affected == {"A"}
    assert sorted(reads) == (["form_key=A"] if budget == 0 else ["form_key=A", "form_key=B"])
    rewritten = pq.read_table(staged / "form_key=A", schema=SCHEMA)
    assert rewritten.to_pylist() == table([("A", 1, "a1", OLD), ("A", 2, "a2 new", NEW),
                                           ("A", 5, "a5", NEW)]).to_pylist()
    for form in ("B", "C"):  # the same files: hard links of the live ones
        for path in (live / f"form_key={form}").glob("*.parquet"):
            assert (staged / f"form_key={form}" / path.name).stat().st_ino == path.stat().st_ino


@pytest.mark.parametrize(("expected_rows", "read"), [
    (None, []),  # no count from the sensor: nothing is read before the changes arrive
    (2, []),  # A holds over 2/3 of the bytes: 2 rows give it under 2 changes, too few
    (5, ["form_key=A"]),  # over 3 changes for A; under 1 for B and C (under 1/6 each)
    (30, ["form_key=A", "form_key=B", "form_key=C"]),  # over 3 for B and C too
])
def test_folders_a_counted_change_will_touch_are_read_before_it_arrives(
    tmp_path, monkeypatch, expected_rows, read
):
    noise = [os.urandom(3000).hex() for _ in range(8)]  # incompressible: bytes follow rows
    held = table([("A", i, noise[i], OLD) for i in range(6)]
                 + [("B", 10, noise[6], OLD), ("C", 20, noise[7], OLD)])
    live = live_slice(tmp_path, held)
    sizes = {p.name: merge._bytes(p) for p in live.iterdir()}
    total = sum(sizes.values())
    assert sizes["form_key=A"] / total > 2 / 3 and sizes["form_key=B"] / total < 1 / 6
    reads: list[str] = []
    monkeypatch.setattr(merge, "read_folder", lambda folder, schema: reads.append(folder.name))
    with ThreadPoolExecutor(max_workers=1) as reader:
        merger = SliceMerger(live, tmp_path / "staged", SCHEMA, "record_id", "form_key", 100,
                             4, reader=reader)
        merger.read_likely(expected_rows)
    assert sorted(reads) == read
    assert reads[:1] == read[:1]  # the biggest first
