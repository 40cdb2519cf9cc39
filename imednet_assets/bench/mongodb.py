"""MongoDB destination benchmark: one study's record envelopes from the lake into nx-27017.

`python -m imednet_assets.bench.mongodb LAKE_ROOT STUDY --path ours|seed` starts its own server
(data in a temp dir), writes the study by the named path and prints one JSON line.
- `ours`: the sink's writer (indexes first, unordered `bulk_write` of `ReplaceOne(upsert=True)`
  in batches of 5,000, stale documents removed).
- `seed`: what the seed's export sink did: `bulk_write` of `UpdateOne({"$set": doc}, upsert=True)`,
  ordered (pymongo's default), 500 per batch (its default), no indexes.
Both paths build the same envelopes from the same Arrow batches, so only the writing differs.
`ours-replay` / `seed-replay`: the same path run twice, only the second run (a replay of an
unchanged study) timed. The clock starts after imports and server start.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from pymongo import MongoClient, UpdateOne

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.mongodb.assets import RECORDS_COLLECTION, records_write
from imednet_assets.defs.sinks.mongodb.documents import EXPORTED_AT, rebatch
from imednet_assets.defs.sinks.mongodb.resources import MongoDestination
from imednet_assets.defs.sinks.mongodb.writer import now_iso, write_collection

NX = Path(sys.executable).parent / "nx-27017"
SEED_BATCH_SIZE = 500
START_TIMEOUT_S = 30
DATABASE = "imednet"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NxServer:
    """One nx-27017 process on 127.0.0.1 (its data in `data_dir`); `stop()` kills it like a crash,
    `start()` brings it back on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(NX), "--data-dir", str(self.data_dir), "-p", str(self.port), "--host",
             "127.0.0.1", "--log-file", str(self.data_dir / "nx.log"),
             "--pid-file", str(self.data_dir / "nx.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
            while True:
                try:
                    client.admin.command("ping")
                    return
                except Exception as exc:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        msg = f"nx-27017 did not start (log: {self.data_dir})"
                        raise RuntimeError(msg) from exc
                    time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def client(self) -> MongoClient:
        return MongoClient(self.uri, serverSelectionTimeoutMS=5_000)


def run_ours(uri: str, records: LakeSlice) -> None:
    dest = MongoDestination(uri=uri, database=DATABASE)
    with dest.open() as db:
        write_collection(db, records_write(records.study_key, records), dest)


def run_seed(uri: str, records: LakeSlice) -> None:
    plan = records_write(records.study_key, records)
    exported_at = now_iso()
    with MongoClient(uri) as client:
        coll = client[DATABASE][RECORDS_COLLECTION]
        for docs in rebatch(plan.batches(SEED_BATCH_SIZE), SEED_BATCH_SIZE):
            coll.bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": {**d, EXPORTED_AT: exported_at}},
                                       upsert=True) for d in docs])


PATHS = {"ours": run_ours, "seed": run_seed, "ours-replay": run_ours, "seed-replay": run_seed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_root", type=Path)
    parser.add_argument("study")
    parser.add_argument("--path", choices=sorted(PATHS), required=True)
    args = parser.parse_args(argv)
    records = LakeSlice.read(args.lake_root, "records", args.study, None)
    n_records = records.num_rows
    with tempfile.TemporaryDirectory(prefix="imednet-bench-mongodb-") as tmp:
        server = NxServer(Path(tmp) / "data")
        server.start()
        try:
            write = PATHS[args.path.removesuffix("-replay")]
            if args.path.endswith("-replay"):
                write(server.uri, records)
            started = time.perf_counter()
            write(server.uri, records)
            seconds = time.perf_counter() - started
            with server.client() as client:
                rows = client[DATABASE][RECORDS_COLLECTION].count_documents(
                    {"study_key": args.study})
        finally:
            server.stop()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"path": args.path, "records": n_records, "rows": rows, "seconds": round(seconds, 3),
           "peak_rss_mb": round(peak_rss_mb, 1)}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
