"""Graph sink benchmark: one study from the lake into a fresh FalkorDB, by one path.

`python -m imednet_assets.bench.graph LAKE_ROOT STUDY --path ours|seed [--limit N]` starts its own
FalkorDB (temp dir), loads the study, and prints one JSON line: path, records (written), rows
(nodes + relationships written), seconds (after imports and server start), peak RSS.

- `ours`: the sink's writer (indexes first, UNWIND batches, nodes then relationships, stale sweep).
- `seed`: the seed's approach re-created: per batch of 200 records one chain of MERGEs per row
  (Study, Subject, Visit, Record, then the three relationships), `SET r += record_data`, no indexes.
  Without indexes every MERGE scans its label, so it slows down as the graph grows.
- `--limit N`: both paths load the same input, the first N live records by record id with their
  subjects and visits (and the whole dictionary), cut from the lake into a temp copy before the
  clock starts, so `ours` and `seed` compare at equal size.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

from imednet_assets.local_servers.falkordb import FalkorServer

SEED_BATCH = 200
SEED_CYPHER = (
    "UNWIND $rows AS row "
    "MERGE (s:Study {study_key: row.study_key}) "
    "MERGE (su:Subject {subject_key: row.subject_key, study_key: row.study_key}) "
    "MERGE (v:Visit {visit_id: row.visit_id, study_key: row.study_key}) "
    "MERGE (r:Record {record_id: row.record_id, study_key: row.study_key}) "
    "SET r += row.record_data "
    "MERGE (s)-[:HAS_SUBJECT]->(su) "
    "MERGE (su)-[:HAS_VISIT]->(v) "
    "MERGE (v)-[:HAS_RECORD]->(r)"
)


def _slices(lake_root: Path, study: str) -> dict:
    from imednet_assets.client.arrow import SCHEMAS
    from imednet_assets.defs.lake.slice import LakeSlice
    from imednet_assets.defs.sinks.graph.model import ENTITIES

    return {e: LakeSlice.read(lake_root, e, study, SCHEMAS[e]) for e in ENTITIES}


def limited_lake(lake_root: Path, study: str, limit: int, into: Path) -> Path:
    """A copy of the study's slices holding only the first `limit` live records by record id,
    the subjects and visits they belong to, and every site, form, variable and study row."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    from imednet_assets.defs.lake.slice import study_dir

    slices = _slices(lake_root, study)
    live = ~pads.field("deleted") | pads.field("deleted").is_null()
    ids = slices["records"].dataset().to_table(columns=["record_id"], filter=live)["record_id"]
    tables = {e: s.dataset().to_table() for e, s in slices.items() if e != "records"}
    ordered = pc.sort_indices(ids)
    wanted = pc.take(ids, ordered[:limit]) if len(ids) else ids
    records = slices["records"].dataset().to_table(
        filter=live & pads.field("record_id").isin(wanted)).sort_by("record_id")
    tables["records"] = records
    tables["subjects"] = tables["subjects"].filter(
        pc.is_in(tables["subjects"]["subject_key"], pc.unique(records["subject_key"])))
    tables["visits"] = tables["visits"].filter(
        pc.is_in(tables["visits"]["visit_id"], pc.unique(records["visit_id"])))
    for entity, table in tables.items():
        folder = study_dir(into, entity, study)
        folder.mkdir(parents=True)
        pq.write_table(table, folder / "part-0.parquet")
    return into


def run_ours(lake_root: Path, study: str, url: str, batch_size: int | None) -> tuple[int, int]:
    from imednet_assets.defs.sinks.graph.model import StudyGraph
    from imednet_assets.defs.sinks.graph.resources import GraphDestination
    from imednet_assets.defs.sinks.graph.writer import StudyWriter

    destination = GraphDestination(falkordb_url=url, falkordb_graph="bench",
                                   **({"batch_size": batch_size} if batch_size else {}))
    transport = destination.transport()
    transport.open()
    try:
        graph = StudyGraph(study, _slices(lake_root, study))
        stats = StudyWriter(transport, destination).write(graph)
    finally:
        transport.close()
    return stats.nodes["Record"].written, (
        stats.total("nodes", "written") + stats.total("rels", "written"))


def run_seed(lake_root: Path, study: str, url: str) -> tuple[int, int]:
    """The seed's Cypher over the study's live records (deleted ones are not loaded either)."""
    from falkordb import FalkorDB

    graph = FalkorDB.from_url(url).select_graph("bench")
    records = _slices(lake_root, study)["records"]
    columns = ["study_key", "record_id", "form_id", "visit_id", "subject_key", "record_data",
               "deleted"]
    loaded = 0
    for batch in records.dataset().to_batches(columns=columns, batch_size=SEED_BATCH):
        rows = [r for r in batch.to_pylist() if not r.pop("deleted")]
        for row in rows:
            row["record_data"] = dict(row["record_data"] or ())
        if rows:
            graph.query(SEED_CYPHER, {"rows": rows})
            loaded += len(rows)
    nodes = graph.query("MATCH (n) RETURN count(n)").result_set[0][0]
    rels = graph.query("MATCH ()-[r]->() RETURN count(r)").result_set[0][0]
    return loaded, nodes + rels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake_root", type=Path)
    parser.add_argument("study")
    parser.add_argument("--path", choices=("ours", "seed"), required=True)
    parser.add_argument("--limit", type=int, default=None,
                        help="load only the first N live records by record id (both paths)")
    parser.add_argument("--batch-size", type=int, default=None, help="ours: rows per batch")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-graph-"))
    lake = args.lake_root
    if args.limit is not None:
        lake = limited_lake(lake, args.study, args.limit, workdir / "lake")
    server = FalkorServer().start()
    try:
        url = server.url
        start = time.perf_counter()
        if args.path == "ours":
            records, rows = run_ours(lake, args.study, url, args.batch_size)
        else:
            records, rows = run_seed(lake, args.study, url)
        seconds = time.perf_counter() - start
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = {"path": args.path, "records": records, "rows": rows, "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak, 1)}
    sys.stdout.write(orjson.dumps(line).decode() + "\n")


if __name__ == "__main__":
    main()
