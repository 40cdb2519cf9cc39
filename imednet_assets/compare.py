"""One study's content in a destination, as text that compares whole: the tests' convergence walk
and `scale-demo` check that two ways of writing the same API state hold the same rows."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa

from imednet_assets.defs.ingest.assets import ENTITIES
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.sinks.sql.ddl import SYNC_STATE_TABLE


def sorted_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted text: a whole-table comparison that ignores row and column order."""
    return sorted(repr(sorted(r.items())) for r in rows)


def without_other_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows minus the columns that are NULL in every one of them: a shared table may have
    columns another study's variables added."""
    keep = {k for r in rows for k, v in r.items() if v is not None}
    return [{k: v for k, v in r.items() if k in keep} for r in rows]


def lake_dump(lake: LakeIOManager, study: str) -> dict[str, list[str]]:
    """Every entity's rows of the study, read as every reader reads the lake."""
    out = {}
    for entity in ENTITIES:
        piece = lake.read_slice(entity, study)
        out[entity] = sorted_rows(piece.columns(piece.schema.names).to_pylist())
    return out


def duckdb_dump(database: Path, study: str) -> dict[str, list[str]]:
    """Every data table's rows of the study; a column another study's variables added (all
    NULL for this study) is left out, so two databases compare on what this study holds."""
    with duckdb.connect(str(database), read_only=True) as con:
        tables = [t for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()]
        out = {}
        for table in tables:
            cursor = con.execute(f'SELECT * FROM "{table}" WHERE study_key = ?', [study])
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            if rows:
                out[table] = sorted_rows(without_other_columns(rows))
        return out


def bundles_dump(bundles: Path, study: str) -> dict[str, bytes]:
    """Every CSV of the study's bundle but `information.csv` (it states the extraction time)."""
    with zipfile.ZipFile(bundles / study / f"{study}.csv.zip") as zf:
        return {n: zf.read(n) for n in zf.namelist() if n != "information.csv"}


def sql_dump(url: sa.URL | str, schema: str, study: str) -> dict[str, list[str]]:
    """Every data table's rows of the study in `schema` (the sync state left out)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names(schema=schema)
                      if t != SYNC_STATE_TABLE]
            out = {}
            for table in tables:
                rows = conn.execute(sa.text(
                    f'SELECT * FROM "{schema}"."{table}" WHERE study_key = :s'),
                    {"s": study}).mappings().all()
                if rows:
                    out[table] = sorted_rows(without_other_columns([dict(r) for r in rows]))
            return out
    finally:
        engine.dispose()
