"""`python -m imednet_assets.bench.sql LAKE_ROOT STUDY --path NAME` prints one JSON line:
`{"path", "records", "rows", "seconds", "peak_rss_mb"}` for loading the study's SQL tables
(subjects, visits, dictionary, records_long, one table per form) from the lake into PostgreSQL.

Paths: `copy` (this platform: Arrow -> CSV -> `COPY FROM STDIN`), `executemany` (the generic
SQLAlchemy path other dialects take, run against PostgreSQL), `rows` (one INSERT per row, what a
naive loader does; only `--rows-limit` rows per table, it is far too slow for the whole study).

The database: a fresh one on the local PostgreSQL (127.0.0.1:5432, user postgres or root), dropped
afterwards, or a fresh schema in `--url`'s database. The clock starts after imports and setup.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.dataset as pads
import sqlalchemy as sa

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.sql import ddl, loader, writer
from imednet_assets.defs.sinks.sql.io_manager import TABLES_BY_ASSET
from imednet_assets.defs.sinks.sql.resources import SqlDestination
from imednet_assets.defs.sinks.tabular import ENTITIES
from imednet_assets.local_servers.postgres import NoLocalPostgres, temporary_database

PATHS = ("copy", "executemany", "rows")


def _executemany(conn, schema, table, reader, progress) -> None:
    columns = [(f.name, ddl.sql_type(f.type)) for f in reader.schema]
    loader.insert_batches(conn, ddl.table_object(schema, table, columns), reader, progress)


def _rows(limit: int):
    def load(conn, schema, table, reader, progress) -> None:
        columns = [(f.name, ddl.sql_type(f.type)) for f in reader.schema]
        insert = ddl.table_object(schema, table, columns).insert()
        for batch in reader:
            for row in batch.slice(0, max(limit - progress.rows, 0)).to_pylist():
                conn.execute(insert, row)  # one statement, one round trip per row
                progress.rows += 1
            if progress.rows >= limit:
                break

    return load


@contextmanager
def _database(url: str | None, keep_schema: str | None) -> Iterator[tuple[str, str | None]]:
    """(URL, schema) of a fresh place to load into; removed afterwards unless `keep_schema`."""
    if url and keep_schema:
        yield url, keep_schema
        return
    if url:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            yield url, schema
        finally:
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {ddl.q(conn.dialect, schema)} "
                                     "CASCADE"))
            engine.dispose()
        return
    try:
        with temporary_database("imednet_bench") as temp:
            yield temp.render_as_string(hide_password=False), None
    except NoLocalPostgres as exc:
        raise SystemExit(f"{exc}; pass --url") from None


def load_study(lake: Path, study: str, url: str, schema: str | None, path: str,
               rows_limit: int, batch_rows: int) -> int:
    """Every SQL table of the study, one transaction per asset as the sink does; rows written."""
    slices = {e: LakeSlice.read(lake, e, study, SCHEMAS[e]) for e in ENTITIES}
    load = {"copy": writer.bulk_load, "executemany": _executemany,
            "rows": _rows(rows_limit)}[path]
    groups = [*({"wants": (lambda s, n=names: s.name in n)} for names in TABLES_BY_ASSET.values()),
              {"wants": lambda s: s.kind == "form", "stale_prefix": ddl.FORM_TABLE_PREFIX}]
    written = 0
    with SqlDestination(url=url, db_schema=schema).open() as engine:
        for i, group in enumerate(groups):
            write = writer.SqlStudyWrite(f"group{i}", study, slices, **group)
            result = writer.write_study(engine, write, schema=schema, batch_rows=batch_rows,
                                        load=load)
            written += sum(result.rows.values())
    return written


def _records(lake: Path, study: str) -> int:
    files = LakeSlice.read(lake, "records", study, SCHEMAS["records"]).files
    return pads.dataset([str(f) for f in files], format="parquet").count_rows() if files else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imednet_assets.bench.sql")
    parser.add_argument("lake_root", type=Path)
    parser.add_argument("study")
    parser.add_argument("--path", choices=PATHS, default="copy")
    parser.add_argument("--url", help="SQLAlchemy URL (default: a temp database on the local "
                        "PostgreSQL); a temp schema is made in it")
    parser.add_argument("--schema", help="with --url: load into this schema and keep it "
                        "(a second load of an unchanged lake then skips)")
    parser.add_argument("--rows-limit", type=int, default=2_000,
                        help="rows per table of the `rows` path")
    parser.add_argument("--batch-rows", type=int, default=65_536, help="rows per Arrow batch")
    args = parser.parse_args(argv)
    pa.set_cpu_count(2)
    with _database(args.url, args.schema) as (url, schema):
        started = time.perf_counter()
        rows = load_study(args.lake_root, args.study, url, schema, args.path, args.rows_limit,
                          args.batch_rows)
        seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"path": args.path, "records": _records(args.lake_root, args.study), "rows": rows,
           "seconds": round(seconds, 3), "peak_rss_mb": round(peak_rss_mb, 1)}
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
