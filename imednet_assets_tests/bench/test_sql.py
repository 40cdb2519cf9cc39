"""The SQL benchmark module on a tiny lake: one JSON line, and the rows are in PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import sqlalchemy as sa

from imednet_assets.defs.sinks.sql.ddl import SYNC_STATE_TABLE
from imednet_assets_tests.defs.sinks.duckdb.conftest import Sink
from imednet_assets_tests.defs.sinks.duckdb.test_assets import study_a
from imednet_assets_tests.defs.sinks.sql.conftest import pg_url  # noqa: F401  (fixture)

# rows of study_a's SQL tables: subjects 1, visits 1, forms 3, variables 13, records_long 33,
# form tables 3 + 1 + 0
ROWS = 1 + 1 + 3 + 13 + 33 + 4


def _bench(lake: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "imednet_assets.bench.sql", str(lake), "A", *args],
        capture_output=True, text=True, check=True, timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    return orjson.loads(lines[0])


def test_bench_copy_loads_every_row_and_reports_one_json_line(
    tmp_path: Path, pg_url: sa.URL  # noqa: F811
) -> None:
    sink = Sink(tmp_path)
    study_a(sink)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    url = pg_url.render_as_string(hide_password=False)
    out = _bench(sink.lake, "--path", "copy", "--url", url, "--schema", schema)
    assert set(out) == {"path", "records", "rows", "seconds", "peak_rss_mb"}
    assert (out["path"], out["records"], out["rows"]) == ("copy", 4, ROWS)
    assert out["seconds"] > 0 and out["peak_rss_mb"] > 0
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names(schema=schema)
                      if t != SYNC_STATE_TABLE]  # bookkeeping, not the study's rows
            landed = sum(conn.execute(sa.text(f'SELECT count(*) FROM "{schema}"."{t}"')).scalar()
                         for t in tables)
            assert landed == ROWS
            assert conn.execute(sa.text(
                f'SELECT count(*) FROM "{schema}"."records_long"')).scalar() == 33
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        engine.dispose()


def test_bench_rows_path_stops_at_its_limit(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    study_a(sink)
    # its own temporary database on the local server, dropped afterwards
    out = _bench(sink.lake, "--path", "rows", "--rows-limit", "2")
    # at most 2 rows per table: 1 + 1 + 2 + 2 + 2 + (1 + 2)
    assert (out["path"], out["records"], out["rows"]) == ("rows", 4, 11)
