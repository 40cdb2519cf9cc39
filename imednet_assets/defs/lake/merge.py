"""Incremental merge of changed rows into a study slice: rows replace their old versions by key,
only the `form_key=` folders that hold a changed row are rewritten, every other file is kept as
it is (hard-linked into the staged slice, same bytes), and the caller swaps the staged slice in.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from imednet_assets.defs.lake.files import FileRoller, link_files
from imednet_assets.defs.lake.slice import encode

DELETED_COLUMN = "deleted"
REWRITE_THREADS = min(4, os.cpu_count() or 1)
"""Folders rewritten at once (each holds one folder's rows in memory)."""
READ_THREADS = min(4, os.cpu_count() or 1)
"""Live folders read ahead at once: a read is mostly zstd and decoding, which release the GIL,
and a rewrite waits for its folder's read (one reader: 1% of 100,000 records took 0.65 s, two:
0.55 s, medians of 5 interleaved runs)."""
READ_AHEAD_BYTES = 24 << 20
"""Parquet bytes of live folders read while the changes still arrive (they take about eight
times that in memory): a study of a few 100,000 records is read whole, a bigger one in part."""
SURE_CHANGES = 3.0
"""Changes a folder is expected to get (its share of the slice's bytes times the rows the
sensor counted) from which it is read before the first change arrives: it then stays
untouched with a chance of about e^-3 (5%), and reading it for nothing costs an idle core."""


@dataclass(frozen=True)
class MergePlan:
    """What the changed rows do to the slice, before anything is written."""

    changed: pa.Table
    """Incoming rows the slice does not hold yet (new keys, or a newer version), sorted by key."""
    inserted: int
    updated: int
    deleted: int
    """Rows newly flagged `deleted` (they stay in the slice, flagged)."""
    held_rows: int
    affected: set[str | None]
    """Split values (form keys) whose folders must be rewritten."""

    @property
    def keys(self) -> list[Any]:
        return self.changed.column(0).to_pylist() if self.changed.num_rows else []


def latest_per_key(table: pa.Table, key: str, watermark: str) -> pa.Table:
    """One row per key, the one with the highest watermark, sorted by key (a row may come twice
    when it changed while the pages were read)."""
    if not table.num_rows:
        return table
    ordered = table.sort_by([(key, "ascending"), (watermark, "descending")])
    keys = ordered.column(key).to_numpy(zero_copy_only=False)
    keep = np.concatenate([[True], keys[1:] != keys[:-1]])
    return ordered.filter(pa.array(keep))


def plan_merge(
    incoming: pa.Table, held: pa.Table, *, key: str, watermark: str, split_by: str | None,
    held_rows: int | None = None,
) -> MergePlan:
    """Compare incoming rows with the slice's `held` key columns (key, watermark and, when the
    entity has them, `deleted` and `split_by`). Rows held with the same key and watermark are
    dropped: the inclusive read overlaps the previous one on purpose. With nothing incoming,
    `held` may be the slice's row count alone (a table without columns). `held_rows`: the
    slice's rows when `held` is only some of them (an append-only slice's read window)."""
    held_rows = held.num_rows if held_rows is None else held_rows
    if not incoming.num_rows:
        return MergePlan(changed=incoming, inserted=0, updated=0, deleted=0,
                         held_rows=held_rows, affected=set())
    incoming = latest_per_key(incoming, key, watermark)
    at = pc.index_in(incoming.column(key), value_set=held.column(key))
    held_mark = pc.take(held.column(watermark), at)
    same = pc.fill_null(pc.equal(incoming.column(watermark), held_mark), False)
    fresh = pc.invert(same)
    changed = incoming.filter(fresh)
    at = at.filter(fresh)
    is_new = pc.is_null(at)
    old = at.filter(pc.invert(is_new))
    inserted = pc.sum(pc.cast(is_new, pa.int64())).as_py() or 0
    deleted = 0
    if DELETED_COLUMN in changed.column_names and DELETED_COLUMN in held.column_names:
        now = pc.fill_null(changed.column(DELETED_COLUMN).filter(pc.invert(is_new)), False)
        before = pc.fill_null(pc.take(held.column(DELETED_COLUMN), old), False)
        deleted = pc.sum(pc.cast(pc.and_(now, pc.invert(before)), pa.int64())).as_py() or 0
    affected: set[str | None] = set()
    if split_by is not None:
        affected = set(changed.column(split_by).to_pylist())
        affected |= set(pc.take(held.column(split_by), old).to_pylist())
    return MergePlan(
        changed=changed.select([key, *[c for c in changed.column_names if c != key]]),
        inserted=inserted,
        updated=changed.num_rows - inserted,
        deleted=deleted,
        held_rows=held_rows,
        affected=affected,
    )


def replace_by_key(old: pa.Table, rows: pa.Table, key: str, drop: pa.ChunkedArray) -> pa.Table:
    """`old` without the keys in `drop`, plus `rows` (sorted by key), sorted by key. The order
    is worked out on the key columns alone and the rows are copied once (the nested answers
    are most of a folder's bytes)."""
    old_keys = old.column(key).to_numpy()
    kept = np.flatnonzero(~np.isin(old_keys, drop.to_numpy()))
    keys = np.concatenate([old_keys[kept], rows.column(key).to_numpy()])
    source = np.concatenate([kept, old.num_rows + np.arange(rows.num_rows)])
    order = source[np.argsort(keys, kind="stable")]
    return pa.concat_tables([old, rows]).take(pa.array(order))


def _bytes(folder: Path | None) -> int:
    """Size of a folder's Parquet files (0 for a folder the slice does not have yet)."""
    return sum(p.stat().st_size for p in folder.glob("*.parquet")) if folder else 0


def read_folder(folder: Path, schema: pa.Schema) -> pa.Table:
    """Every row of a folder's Parquet files."""
    files = sorted(folder.glob("*.parquet"))
    return pads.dataset([str(f) for f in files], schema=schema).to_table()


class SliceMerger:
    """Writes the merged slice into `staged` from the live slice at `current`."""

    def __init__(
        self, current: Path, staged: Path, schema: pa.Schema, key: str, split_by: str | None,
        rows_per_file: int, row_group_rows: int, reader: ThreadPoolExecutor | None = None,
    ) -> None:
        self.current, self.staged, self.schema = current, staged, schema
        self.key, self.split_by = key, split_by
        self.rows_per_file, self.row_group_rows = rows_per_file, row_group_rows
        self._reader = reader
        self._reads: dict[Path, Future[pa.Table]] = {}
        self._read_bytes = 0

    def read_likely(self, expected_rows: int | None) -> None:
        """Start reading the live folders that `expected_rows` changed rows, spread like the
        slice's rows, will almost surely touch (`SURE_CHANGES`), biggest first."""
        if self._reader is None or not expected_rows or self.split_by is None:
            return
        sizes = {p: _bytes(p) for p in self.current.iterdir() if p.is_dir()}
        total = sum(sizes.values())
        for folder, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0].name)):
            if expected_rows * size / max(total, 1) >= SURE_CHANGES:
                self._read(folder, size)

    def read_ahead(self, batch: pa.RecordBatch) -> None:
        """Start reading the live folders that `batch`'s rows go to (on `reader`), so their
        rewrite finds them read: the changes arrive from the API meanwhile, leaving a core
        idle. Stops at `READ_AHEAD_BYTES`; a folder not read ahead is read when rewritten."""
        if self._reader is None or not batch.num_rows:
            return
        if self.split_by is None:
            folders = [self.current]
        else:
            values = pc.unique(batch.column(self.split_by)).to_pylist()
            folders = [self.current / f"{self.split_by}={encode(v)}" for v in values]
        for folder in folders:
            if folder not in self._reads and folder.is_dir():
                self._read(folder, _bytes(folder))

    def _read(self, folder: Path, size: int) -> None:
        """Read `folder` on the reader, within `READ_AHEAD_BYTES`."""
        if self._reader is None or folder in self._reads:
            return
        if self._read_bytes + size > READ_AHEAD_BYTES:
            return
        self._read_bytes += size
        self._reads[folder] = self._reader.submit(read_folder, folder, self.schema)

    def _old_rows(self, folder: Path) -> pa.Table:
        """The folder's rows: read ahead, or read now (also when its read has not started)."""
        future = self._reads.pop(folder, None)
        if future is not None and not future.cancel():
            return future.result()
        return read_folder(folder, self.schema)

    def discard_reads(self) -> None:
        """Cancel the reads ahead no rewrite took (their folders did not change after all)."""
        for future in self._reads.values():
            future.cancel()
        self._reads.clear()

    def write(self, plan: MergePlan, *, append_only: bool) -> pa.Table:
        """Stage the merged slice; returns the changed rows as written (in the slice's schema)."""
        changed = plan.changed.select(self.schema.names).cast(self.schema)
        self.staged.mkdir(parents=True, exist_ok=True)
        if self.split_by is None:
            if append_only and plan.updated == 0:
                self._append(changed)
            else:
                self._rewrite(self.current, self.staged, changed, write_empty=True)
            return changed
        folders = {p.name: p for p in self.current.iterdir() if p.is_dir()}
        targets = {f"{self.split_by}={encode(v)}": v for v in plan.affected}
        for name, folder in folders.items():
            if name not in targets:
                link_files(folder, self.staged / name)
        column = changed.column(self.split_by)

        def rewrite(name: str) -> None:
            value = targets[name]
            mask = pc.is_null(column) if value is None else pc.equal(column, value)
            rows = changed.filter(pc.fill_null(mask, False))
            # every changed key leaves the old folder, also one whose row moved to another form
            self._rewrite(folders.get(name), self.staged / name, rows, write_empty=False,
                          drop=changed.column(self.key))

        # folders are independent and Arrow's reads, sorts and writes release the GIL; the
        # biggest go first, so no thread is left with a big one at the end
        order = sorted(targets, key=lambda name: (-_bytes(folders.get(name)), name))
        with ThreadPoolExecutor(max_workers=REWRITE_THREADS) as pool:
            list(pool.map(rewrite, order))
        return changed

    def _append(self, rows: pa.Table) -> None:
        """Keep every file, add the new rows as the next part file."""
        link_files(self.current, self.staged)
        existing = sorted(self.current.glob("*.parquet"))
        roller = FileRoller(self.staged, self.schema, self.key, self.rows_per_file,
                            self.row_group_rows)
        roller.files = [self.staged / p.name for p in existing]  # numbering goes on after them
        self._feed(roller, rows.sort_by(self.key), write_empty=False)

    def _rewrite(self, source: Path | None, target: Path, rows: pa.Table, *,
                 write_empty: bool, drop: pa.ChunkedArray | None = None) -> None:
        """`source`'s rows without the keys in `drop` (default: those of `rows`), plus `rows`,
        sorted by key, into `target`."""
        merged = rows
        if source is not None and any(source.glob("*.parquet")):
            old = self._old_rows(source)
            drop = rows.column(self.key) if drop is None else drop
            merged = replace_by_key(old, rows, self.key, drop)
        roller = FileRoller(target, self.schema, self.key, self.rows_per_file,
                            self.row_group_rows)
        self._feed(roller, merged, write_empty=write_empty)

    def _feed(self, roller: FileRoller, table: pa.Table, *, write_empty: bool) -> None:
        try:
            for batch in table.to_batches(max_chunksize=self.row_group_rows):
                roller.write(batch)
            roller.close(write_empty=write_empty)
        except BaseException:
            roller.abort()
            raise
