"""Fixtures of the SQL sink tests: the real PostgreSQL on 127.0.0.1 (a database made for this test
session and dropped after it, a schema per test), SQLite files, and a real Dagster run over a real
lake folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.sql.assets import sql_assets
from imednet_assets.defs.sinks.sql.definitions import sql_resources
from imednet_assets.local_servers.postgres import temporary_database
from imednet_assets_tests.defs.sinks.duckdb.conftest import ENTITIES


@pytest.fixture(scope="session")
def pg_url() -> Iterator[sa.URL]:
    """A fresh database on the local PostgreSQL for this session; dropped afterwards. No skip when
    PostgreSQL is missing: it runs wherever the suite runs, so its absence is a failure."""
    with temporary_database("imednet_sql_test") as url:
        yield url


class SqlSink:
    """A lake folder + a database schema + a Dagster instance, and a way to run the SQL assets."""

    def __init__(self, tmp_path: Path, url: sa.URL | str, schema: str | None) -> None:
        self.lake = tmp_path / "lake"
        self.url = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        self.schema = schema
        self.instance = dg.DagsterInstance.ephemeral()
        self.engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)

    def resources(self, **settings: object) -> dict[str, object]:
        return {"lake_io_manager": LakeIOManager(root=str(self.lake)),
                **sql_resources(self.url, self.schema, retry_backoff_s=0.0, **settings)}

    def run(self, study: str, *, raise_on_error: bool = True, assets=None,
            **settings: object) -> dg.ExecuteInProcessResult:
        if study not in self.instance.get_dynamic_partitions("study"):
            self.instance.add_dynamic_partitions("study", [study])
        upstream = [dg.AssetSpec(["imednet", e], partitions_def=study_partitions)
                    for e in ENTITIES]
        return dg.materialize(
            [*upstream, *(assets or sql_assets)],
            partition_key=study,
            instance=self.instance,
            resources=self.resources(**settings),
            raise_on_error=raise_on_error,
        )

    def query(self, text: str, params: dict | None = None) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(text), params or {})]

    def ref(self, table: str) -> str:
        q = self.engine.dialect.identifier_preparer.quote_identifier
        return f"{q(self.schema)}.{q(table)}" if self.schema else q(table)

    def tables(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names(schema=self.schema))

    def columns(self, table: str) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            cols = sa.inspect(conn).get_columns(table, schema=self.schema)
        return [(c["name"], str(c["type"])) for c in cols]

    def dump(self, table: str, study: str | None = None) -> list[tuple]:
        """Every row of a table (optionally of one study), in a total order."""
        where = "" if study is None else ' WHERE "study_key" = :s'
        rows = self.query(f"SELECT * FROM {self.ref(table)}{where}", {"s": study})
        return sorted(rows, key=repr)

    def dicts(self, table: str, study: str | None = None) -> list[dict]:
        """Every row of a table (optionally of one study) as column -> value, in a total order."""
        names = [c for c, _ in self.columns(table)]
        return sorted((dict(zip(names, row, strict=True)) for row in self.dump(table, study)),
                      key=lambda d: repr(sorted(d.items())))

    def snapshot(self) -> dict[str, tuple[list, list[tuple]]]:
        """Every table: its columns (name, type) and all its rows."""
        return {t: (self.columns(t), self.dump(t)) for t in self.tables()}

    def materializations(self, asset: str, study: str) -> int:
        events = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["sql", asset]),
                                  asset_partitions=[study]), limit=100)
        return len(events.records)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def pg_sink(tmp_path: Path, pg_url: sa.URL) -> Iterator[SqlSink]:
    """A SQL sink into its own schema of the session database (the schema is made by the sink)."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    sink = SqlSink(tmp_path, pg_url, schema)
    try:
        yield sink
    finally:
        with sink.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        sink.close()


@pytest.fixture
def sqlite_sink(tmp_path: Path) -> Iterator[SqlSink]:
    sink = SqlSink(tmp_path, f"sqlite:///{tmp_path / 'sink.sqlite'}", None)
    try:
        yield sink
    finally:
        sink.close()
