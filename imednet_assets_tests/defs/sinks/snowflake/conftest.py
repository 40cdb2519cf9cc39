"""Fixtures for the Snowflake sink tests: one real fakesnow server (HTTP, through the real
connector) per session, a fresh schema per test, real lake folders and real Dagster runs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import snowflake.connector

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.sinks.snowflake import loader, sql
from imednet_assets.defs.sinks.snowflake.assets import snowflake_assets
from imednet_assets.defs.sinks.snowflake.definitions import snowflake_resources
from imednet_assets.defs.sinks.snowflake.resources import SnowflakeConnection, SnowflakeLoadSettings
from imednet_assets.local_servers.snowflake import LocalSnowflake
from imednet_assets_tests.defs.ingest.conftest import (  # noqa: F401 - the simulator fixtures
    imednet_env,
    sim,
)
from imednet_assets_tests.defs.sinks.runs import materialize_study

DATABASE = "IMEDNET"
PASSWORD = "s3cr3t-Pa55word"
STAGE = "IMEDNET_STAGE"
_schemas = itertools.count(1)


@pytest.fixture(scope="session")
def snowflake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSnowflake]:
    server = LocalSnowflake(tmp_path_factory.mktemp("fakesnow"))
    with server:
        yield server


class SnowSink:
    """A lake folder + a schema of the fakesnow server + a Dagster instance."""

    def __init__(self, tmp_path: Path, server: LocalSnowflake) -> None:
        self.lake = tmp_path / "lake"
        self.server = server
        self.schema = f"T{next(_schemas)}"
        self.manifest = tmp_path / "manifest.jsonl"
        self.instance = dg.DagsterInstance.ephemeral()
        self.target_file_mb = 128.0
        self.batch_size = 5_000
        self._conn: Any = None
        self.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}", schema=False)
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{self.schema}", schema=False)

    def connection(self, **overrides: Any) -> SnowflakeConnection:
        fields: dict[str, Any] = {
            "account": "fakesnow", "user": "tester", "password": PASSWORD, "database": DATABASE,
            "schema": self.schema, "autocommit": True, "login_timeout": 10,
            "network_timeout": 60,
            "additional_snowflake_connection_args": self.server.connection_args(),
        }
        return SnowflakeConnection(**{**fields, **overrides})

    def settings(self, **overrides: Any) -> SnowflakeLoadSettings:
        fields: dict[str, Any] = {"stage": STAGE, "manifest_path": str(self.manifest),
                                  "target_file_mb": self.target_file_mb,
                                  "batch_size": self.batch_size, "retry_backoff_s": 0}
        return SnowflakeLoadSettings(**{**fields, **overrides})

    def run(self, study: str, *, raise_on_error: bool = True, selection: list[str] | None = None,
            connection: SnowflakeConnection | None = None) -> dg.ExecuteInProcessResult:
        return materialize_study(
            self.instance, study, snowflake_assets,
            {"lake_io_manager": LakeIOManager(root=str(self.lake)),
             **snowflake_resources(connection or self.connection(), self.settings())},
            raise_on_error=raise_on_error, selection=selection)

    def _connect(self, schema: bool = True) -> Any:
        return snowflake.connector.connect(
            user="tester", password=PASSWORD, account="fakesnow", network_timeout=60,
            database=DATABASE if schema else None, schema=self.schema if schema else None,
            **self.server.connection_args())

    def execute(self, text: str, params: Any = None, *, schema: bool = True) -> list[tuple]:
        """Run one statement; in the schema on one kept connection (a login per statement
        would double the time of every check), else on a connection of its own."""
        if schema:
            if self._conn is None:
                self._conn = self._connect()
            cur = self._conn.cursor()
            cur.execute(text, params)
            return list(cur.fetchall()) if cur.description else []
        conn = self._connect(schema)
        try:
            cur = conn.cursor()
            cur.execute(text, params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def tables(self) -> list[str]:
        """Data tables of the schema (the manifest table is a log: it grows on every load; the
        sync state says what was applied, not what the data is)."""
        names = [t for (t,) in self.execute(sql.list_tables_sql())]
        return sorted(t for t in names if t not in (sql.MANIFEST_TABLE, sql.SYNC_STATE_TABLE))

    def sync_state(self) -> list[tuple]:
        """Every stored (asset, study, entity, lake token), sorted."""
        return sorted(self.execute(
            f'SELECT "ASSET", "STUDY_KEY", "ENTITY", "LAKE_TOKEN" FROM "{sql.SYNC_STATE_TABLE}"'))

    def _catalog(self, table: str | None = None) -> loader.Catalog:
        """The loader's own reading of the schema's tables and columns (same type names)."""
        if self._conn is None:
            self._conn = self._connect()
        return loader.read_catalog(self._conn.cursor(), table)

    def columns(self, table: str) -> list[tuple[str, str]]:
        return list(self._catalog(table).get(table, {}).values())

    def all_columns(self) -> dict[str, list[tuple[str, str]]]:
        """table -> its (column, type) in table order, for every table, in one query."""
        return {t: list(c.values()) for t, c in self._catalog().items()}

    def dump(self, table: str, study: str | None = None,
             columns: list[tuple[str, str]] | None = None) -> list[tuple]:
        """Every row (optionally of one study), sorted. Timestamps are read as text: the fakesnow
        server sends a NULL timestamp as 1970-01-01 (the table holds NULL)."""
        cols = []
        for name, ctype in columns if columns is not None else self.columns(table):
            col = sql.quote_ident(name)
            cols.append(f"CAST({col} AS VARCHAR)" if ctype.startswith("TIMESTAMP") else col)
        where = "" if study is None else f' WHERE "{sql.STUDY_COLUMN}" = %s'
        rows = self.execute(f'SELECT {", ".join(cols)} FROM {sql.quote_ident(table)}{where}',
                            None if study is None else (study,))
        return sorted(rows, key=repr)

    def snapshot(self, study: str | None = None) -> dict[str, tuple[list, list[tuple]]]:
        """table -> (columns, rows) of every data table (optionally only one study's rows)."""
        columns = self.all_columns()
        return {t: (columns[t], self.dump(t, study, columns[t])) for t in self.tables()}

    def staged(self) -> list[str]:
        return [r[0] for r in self.execute(sql.list_stage_sql(STAGE))]


@pytest.fixture
def snow(tmp_path: Path, snowflake_server: LocalSnowflake) -> Iterator[SnowSink]:
    sink = SnowSink(tmp_path, snowflake_server)
    yield sink
    sink.close()
