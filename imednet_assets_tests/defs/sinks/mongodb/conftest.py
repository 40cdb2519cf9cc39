"""A real nx-27017 server (MongoDB wire protocol on SQLite) per test, and a Dagster run over a lake.

The server (the benchmark's runner) keeps its data in a temp folder, so a test can kill it and
start it again on the same data ("killed mid-partition, then back"). Lake folders come from the
DuckDB tests' helpers.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.manifest import SliceManifest
from imednet_assets.defs.lake.slice import study_dir
from imednet_assets.defs.results import materialization
from imednet_assets.defs.sinks.mongodb.assets import mongodb_assets
from imednet_assets.defs.sinks.mongodb.definitions import mongodb_resources
from imednet_assets.local_servers import free_port
from imednet_assets.local_servers.mongodb import NxServer as MongoServer
from imednet_assets_tests.defs.ingest.conftest import imednet_env, sim  # noqa: F401 - fixtures
from imednet_assets_tests.defs.sinks.duckdb.conftest import write_lake
from imednet_assets_tests.defs.sinks.runs import materialize_study

__all__ = ["MongoServer", "free_port"]


@pytest.fixture
def mongo() -> Iterator[MongoServer]:
    # not under tmp_path: the data folder is removed as soon as the test ends
    folder = Path(tempfile.mkdtemp(prefix="nx27017-"))
    server = MongoServer(folder / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


class MongoSink:
    """A lake folder + a database on the test server, and a way to run the MongoDB assets."""

    def __init__(self, tmp_path: Path, server: MongoServer, database: str = "imednet") -> None:
        self.lake = tmp_path / "lake"
        self.server = server
        self.database = database
        self.instance = dg.DagsterInstance.ephemeral()

    def resources(self, **settings: Any) -> dict[str, Any]:
        uri = settings.pop("uri", self.server.uri)
        return {"lake_io_manager": LakeIOManager(root=str(self.lake)),
                **mongodb_resources(uri, self.database, **settings)}

    def run(self, study: str, *, raise_on_error: bool = True,
            **settings: Any) -> dg.ExecuteInProcessResult:
        return materialize_study(self.instance, study, mongodb_assets,
                                 self.resources(**settings), raise_on_error=raise_on_error)

    def docs(self, collection: str, study: str | None = None) -> list[dict]:
        """Every document (optionally of one study), ordered by `_id`."""
        with self.server.client() as client:
            query = {} if study is None else {"study_key": study}
            return list(client[self.database][collection].find(query).sort("_id", 1))

    def snapshot(self) -> dict[str, list[dict]]:
        return {c: self.docs(c) for c in ("records", "subjects")}


def without_export_time(docs: list[dict]) -> list[dict]:
    """Documents minus `exported_at` (the only field that differs between two clean runs)."""
    return [{k: v for k, v in d.items() if k != "exported_at"} for d in docs]


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    """The description of the (first) failed step's `dg.Failure`."""
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.user_failure_data.description


def materialization_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    event = materialization(result, f"mongodb/{name}")
    return {k: v.value for k, v in event.metadata.items()}


def stamp_manifest(root: Path, entity: str, study: str, before: SliceManifest | None = None,
                   keys: list[Any] | None = None) -> str:
    """Give the slice on disk the manifest the lake would: a first write (new lineage) without
    `before`, else a full write after `before`, or with `keys` an incremental merge of them.
    Returns the slice's token."""
    folder = study_dir(root, entity, study)
    key_column = {"records": "record_id", "subjects": "subject_id", "visits": "visit_id"}.get(
        entity, f"{entity}_id")
    if before is None:
        manifest = SliceManifest.first(entity, study, key_column, 0, None)
    elif keys is None:
        manifest = before.after_full(0, None)
    else:
        manifest = before.after_merge(0, None, keys)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in folder.rglob("*.parquet"))
    manifest = dataclasses.replace(manifest, rows=rows)
    manifest.write(folder)
    return manifest.token


def write_logged(root: Path, entity: str, study: str, rows: list[dict],
                 keys: list[Any] | None = None) -> str:
    """`write_lake` plus the manifest the lake would give the slice (see `stamp_manifest`)."""
    before = SliceManifest.read(study_dir(root, entity, study))
    write_lake(root, entity, study, rows)
    return stamp_manifest(root, entity, study, before, keys)
