"""Incremental merges and crashes on both lakes: a local folder and S3 on loopback (moto's
server, a test double of S3). Merges after random upstream changes must equal a full write; a
writer killed (SIGKILL, a real crash) just before its commit leaves readers on the old slice, and
the next writer cleans up after it and ends exact."""

import json
import random
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from imednet_assets.defs.lake.slice import Incremental, LakeWrite
from imednet_assets.defs.lake.version_manifest import SLICE_OBJECT
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.results import materialization
from imednet_assets_tests.defs.lake.lakes import S3Lake, batches_of, lake_asset, rows

REPO = Path(__file__).resolve().parents[3]
MSCHEMA = pa.schema([("study_key", pa.string()), ("form_key", pa.string()),
                     ("record_id", pa.int64()), ("value", pa.string()),
                     ("date_modified", pa.timestamp("ms"))])
FORMS = ["AE", "VS", "DM", "LB"]
START = datetime(2024, 1, 1)


class Upstream:
    """One study's records as an API holds them; every change moves its clock on a second."""

    def __init__(self, study: str, rng: random.Random, count: int) -> None:
        self.study, self.rng, self.clock = study, rng, START
        self.rows = {i: self._row(i, rng.choice(FORMS), "v0") for i in range(1, count + 1)}

    def _row(self, record_id: int, form: str, value: str) -> dict:
        return {"study_key": self.study, "form_key": form, "record_id": record_id,
                "value": value, "date_modified": self.clock}

    def table(self) -> pa.Table:
        return pa.Table.from_pylist([self.rows[k] for k in sorted(self.rows)], schema=MSCHEMA)

    def since(self, when: datetime) -> pa.Table:
        table = self.table()
        return table.filter(pc.greater_equal(table["date_modified"], pa.scalar(when, MSCHEMA.field(
            "date_modified").type)))

    def change(self, *, modify: int, add: int, move: int, purge: int = 0) -> None:
        self.clock += timedelta(seconds=30)
        keys = sorted(self.rows)
        for k in self.rng.sample(keys, modify):
            self.rows[k] = {**self.rows[k], "value": f"v{self.rng.randrange(10**6)}",
                            "date_modified": self.clock}
        for k in self.rng.sample(keys, move):  # a record moves to another form's folder
            self.rows[k] = {**self.rows[k], "form_key": self.rng.choice(FORMS),
                            "date_modified": self.clock}
        for k in range(max(keys) + 1, max(keys) + 1 + add):
            self.rows[k] = self._row(k, self.rng.choice(FORMS), "new")
        for k in self.rng.sample(sorted(self.rows), purge):  # gone upstream without a trace
            del self.rows[k]


def records_asset(upstream: dict[str, Upstream], mode: dict[str, bool]) -> dg.AssetsDefinition:
    @dg.asset(key=["imednet", "records"], partitions_def=study_partitions,
              io_manager_key="lake_io_manager")
    def records(context: dg.AssetExecutionContext):
        up = upstream[context.partition_key]
        incremental = Incremental(
            changes_since=lambda since: up.since(since).to_batches(max_chunksize=4),
            api_count=lambda: len(up.rows),
        ) if mode["incremental"] else None
        return LakeWrite("records", up.study, MSCHEMA, batches_of(up.table(), 7), "record_id",
                         "form_key", watermark_by="date_modified", incremental=incremental)

    return records


def write(lake, upstream: Upstream, instance, *, incremental: bool, **io) -> dict:
    asset = records_asset({upstream.study: upstream}, {"incremental": incremental})
    result = dg.materialize([asset], partition_key=upstream.study, instance=instance,
                            resources={"lake_io_manager": lake.io(row_group_rows=4, **io)})
    return {k: v.value for k, v in materialization(result, "imednet/records").metadata.items()}


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_merges_equal_a_full_write(lake, instance, seed):
    upstream = Upstream("S1", random.Random(seed), 40)
    write(lake, upstream, instance, incremental=False)
    rounds = [dict(modify=3, add=2, move=1), dict(modify=0, add=0, move=0),
              dict(modify=5, add=4, move=2, purge=2), dict(modify=2, add=1, move=0)]
    for number, change in enumerate(rounds):
        before = lake.manifest("records", "S1") if isinstance(lake, S3Lake) else None
        upstream.change(**change)
        meta = write(lake, upstream, instance, incremental=True)
        expected = upstream.table()
        assert lake.table("records", "S1").equals(expected), number
        # a full write of the same upstream into an empty lake of the same kind
        fresh = lake.sibling(f"fresh-{number}")
        write(fresh, upstream, instance, incremental=False)
        assert lake.table("records", "S1").equals(fresh.table("records", "S1")), number
        assert meta["mode"] == ("full" if change.get("purge") else "incremental"), number
        if before is not None and meta["changed"] and meta["mode"] == "incremental":
            after, held = lake.manifest("records", "S1"), before.by_path()
            for f in after.files:
                if f.version == after.version:  # uploaded: new or changed bytes only
                    assert f.path not in held or held[f.path].sha256 != f.sha256, number
                else:  # a folder the changes did not reach: referenced, not uploaded again
                    assert held[f.path] == f, number
    # and a full refresh now finds the merged slice byte for byte what it would write
    assert write(lake, upstream, instance, incremental=False)["changed"] is False


def crash(lake, seam: str, data: list[tuple[int, str]]) -> subprocess.CompletedProcess:
    args = {"io": lake.io_config(), "seam": seam, "study": "S1", "rows": data}
    return subprocess.run(
        [sys.executable, "-m", "imednet_assets_tests.defs.lake.crash_writer", json.dumps(args)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )


SEAMS = {"local": "imednet_assets.defs.lake.local:swap",
         "s3": "imednet_assets.defs.lake.object_slices:before_manifest_put"}


def test_a_writer_killed_before_its_commit_leaves_readers_on_the_old_slice(lake, instance):
    old = rows("S1", [(1, "A"), (2, "B"), (3, "C")])
    asset = lake_asset("records", {"fn": lambda s: batches_of(old, 2)}, "form_key")
    dg.materialize([asset], partition_key="S1", instance=instance,
                   resources={"lake_io_manager": lake.io()})
    before = lake.snapshot("records", "S1")

    # the killed writer had staged (local) or uploaded (object store) everything it had
    new = [(1, "A"), (3, "C2"), (4, "D")]
    died = crash(lake, SEAMS[lake.kind], new)
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    assert lake.table("records", "S1").equals(old)
    after_crash = lake.snapshot("records", "S1")
    if isinstance(lake, S3Lake):
        orphans = sorted(set(after_crash) - set(before))
        assert orphans and all(name.startswith("v-") for name in orphans)
        assert after_crash[SLICE_OBJECT] == before[SLICE_OBJECT]
    else:
        assert after_crash == before
    assert [n for n in lake.leftovers("records") if n.startswith(".staging")] == [
        ".staging/study_key=S1"]

    # the next writer (grace 0: nothing may still read the old version) ends exact and clean
    newer = rows("S1", [(1, "A"), (3, "C2"), (4, "D"), (5, "E")])
    asset = lake_asset("records", {"fn": lambda s: batches_of(newer, 2)}, "form_key")
    dg.materialize([asset], partition_key="S1", instance=instance,
                   resources={"lake_io_manager": lake.io(version_grace_s=0)})
    assert lake.table("records", "S1").equals(newer)
    assert lake.leftovers("records") == ["study_key=S1"]
    if isinstance(lake, S3Lake):
        manifest = lake.manifest("records", "S1")
        assert sorted(lake.snapshot("records", "S1")) == sorted(
            [SLICE_OBJECT, *(f.key for f in manifest.files)])
