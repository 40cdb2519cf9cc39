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
import resource
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
from imednet_assets.local_servers.mongodb import NxServer

SEED_BATCH_SIZE = 500
DATABASE = "imednet"


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
