"""Fixtures of the SQL sink tests: the real PostgreSQL on 127.0.0.1 (a database made for this test
session and dropped after it, a schema per test), the real MariaDB on 127.0.0.1:3306 (a database
made for each test and dropped after it), SQLite files, and a real Dagster run over a real lake
folder. Neither server is skipped when missing: both run wherever the suite runs, so an absent
server fails the tests that need it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.sinks.sql import ddl
from imednet_assets.defs.sinks.sql.assets import sql_assets
from imednet_assets.defs.sinks.sql.definitions import sql_resources
from imednet_assets.local_servers.postgres import temporary_database
from imednet_assets_tests.defs.sinks.runs import materialize_study

#: The local MariaDB's admin login (started on this machine kind before every session and CI);
#: the tests make their own databases with it.
MARIADB_ADMIN_URL = os.environ.get(
    "IMEDNET_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
DIALECTS = ("postgresql", "mariadb")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[sa.URL]:
    """A fresh database on the local PostgreSQL for this session; dropped afterwards. No skip when
    PostgreSQL is missing: it runs wherever the suite runs, so its absence is a failure."""
    with temporary_database("imednet_sql_test") as url:
        yield url


@contextmanager
def temporary_mysql_database(prefix: str = "imednet_sql_test") -> Iterator[sa.URL]:
    """A fresh utf8mb4 database `<prefix>_<pid>_<random>` on the local MariaDB, dropped after;
    an unreachable server raises (the test fails, it is not skipped)."""
    admin = sa.make_url(MARIADB_ADMIN_URL)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        try:
            yield admin.set(database=name)
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        engine.dispose()


class SqlSink:
    """A lake folder + a database schema + a Dagster instance, and a way to run the SQL assets."""

    def __init__(self, tmp_path: Path, url: sa.URL | str, schema: str | None) -> None:
        self.lake = tmp_path / "lake"
        self.url = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        self.schema = schema
        self.instance = dg.DagsterInstance.ephemeral()
        # pooled: the tests read a lot, and a MariaDB connection costs a TLS handshake
        self.engine = sa.create_engine(self.url)

    def resources(self, **settings: object) -> dict[str, object]:
        return {"lake_io_manager": LakeIOManager(root=str(self.lake)),
                **sql_resources(self.url, self.schema, retry_backoff_s=0.0, **settings)}

    def run(self, study: str, *, raise_on_error: bool = True, assets=None, selection=None,
            **settings: object) -> dg.ExecuteInProcessResult:
        return materialize_study(self.instance, study, assets or sql_assets,
                                 self.resources(**settings), raise_on_error=raise_on_error,
                                 selection=selection)

    @property
    def dialect(self) -> str:
        """`postgresql`, `mysql` (MariaDB through pymysql) or `sqlite`."""
        return self.engine.dialect.name

    def query(self, text: str, params: dict | None = None) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(text), params or {})]

    def q(self, name: str) -> str:
        """An identifier quoted the database's way (backticks on MariaDB)."""
        return ddl.q(self.engine.dialect, name)

    def ref(self, table: str) -> str:
        return ddl.table_ref(self.engine.dialect, self.schema, table)

    def tables(self) -> list[str]:
        """The data tables (not the sync state)."""
        with self.engine.connect() as conn:
            names = sa.inspect(conn).get_table_names(schema=self.schema)
        return sorted(n for n in names if n != ddl.SYNC_STATE_TABLE)

    def sync_state(self, asset: str | None = None) -> list[tuple]:
        """(asset, study_key, entity, lake_token) rows of the sync state, sorted."""
        rows = self.query(f"SELECT * FROM {self.ref(ddl.SYNC_STATE_TABLE)}")
        return sorted(r for r in rows if asset is None or r[0] == asset)

    def columns(self, table: str) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            cols = sa.inspect(conn).get_columns(table, schema=self.schema)
        return [(c["name"], str(c["type"])) for c in cols]

    def dump(self, table: str, study: str | None = None) -> list[tuple]:
        """Every row of a table (optionally of one study), in a total order."""
        where = "" if study is None else f" WHERE {self.q('study_key')} = :s"
        rows = self.query(f"SELECT * FROM {self.ref(table)}{where}", {"s": study})
        return sorted(rows, key=repr)

    def dicts(self, table: str, study: str | None = None) -> list[dict]:
        """Every row of a table (optionally of one study) as column -> value, in a total order."""
        names = [c for c, _ in self.columns(table)]
        return sorted((dict(zip(names, row, strict=True)) for row in self.dump(table, study)),
                      key=lambda d: repr(sorted(d.items())))

    def snapshot(self) -> dict[str, tuple[list, list[tuple]]]:
        """Every data table: its columns (name, type) and all its rows."""
        tables = self.tables()
        if not tables:
            return {}
        with self.engine.connect() as conn:
            found = sa.inspect(conn).get_multi_columns(schema=self.schema, filter_names=tables)
            columns = {t: [(c["name"], str(c["type"])) for c in cols]
                       for (_, t), cols in found.items()}
            rows = {t: sorted((tuple(r) for r in conn.execute(
                sa.text(f"SELECT * FROM {self.ref(t)}"))), key=repr) for t in tables}
        return {t: (columns[t], rows[t]) for t in tables}

    def materializations(self, asset: str, study: str) -> int:
        events = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["sql", asset]),
                                  asset_partitions=[study]), limit=100)
        return len(events.records)

    def address(self) -> str:
        """The destination as metadata and messages show it (credentials masked)."""
        url = sa.make_url(self.url)
        driver = "postgresql+psycopg" if url.drivername == "postgresql" else url.drivername
        return f"{driver}://***@{url.host}:{url.port}/{url.database}"

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def empty_twin(sink: SqlSink, tmp_path: Path) -> Iterator[SqlSink]:
    """An empty place on the same server as `sink` (a new schema on PostgreSQL, a new database
    on MariaDB) with its own Dagster instance, reading `sink`'s lake: for "a clean load gives"."""
    folder = tmp_path / f"twin-{uuid.uuid4().hex[:6]}"
    if sink.dialect == "postgresql":
        twin = SqlSink(folder, sink.url, f"t_{uuid.uuid4().hex[:10]}")
        twin.lake = sink.lake
        try:
            yield twin
        finally:
            with twin.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{twin.schema}" CASCADE'))
            twin.close()
        return
    with temporary_mysql_database() as url:
        twin = SqlSink(folder, url, url.database)
        twin.lake = sink.lake
        try:
            yield twin
        finally:
            twin.close()


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
def mariadb_sink(tmp_path: Path) -> Iterator[SqlSink]:
    """A SQL sink into a database of its own on the local MariaDB (the schema, as MySQL calls a
    database, is named too, so every statement must qualify its tables)."""
    with temporary_mysql_database() as url:
        sink = SqlSink(tmp_path, url, url.database)
        try:
            yield sink
        finally:
            sink.close()


@pytest.fixture(params=DIALECTS)
def sink(request: pytest.FixtureRequest) -> SqlSink:
    """The same test on the real PostgreSQL and the real MariaDB."""
    return request.getfixturevalue("pg_sink" if request.param == "postgresql" else "mariadb_sink")


@pytest.fixture
def sqlite_sink(tmp_path: Path) -> Iterator[SqlSink]:
    sink = SqlSink(tmp_path, f"sqlite:///{tmp_path / 'sink.sqlite'}", None)
    try:
        yield sink
    finally:
        sink.close()
