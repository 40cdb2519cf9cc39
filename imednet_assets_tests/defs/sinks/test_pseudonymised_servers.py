"""Pseudonymised destinations on real servers on loopback (issue 11): MongoDB (nx-27017), the
graph (FalkorDB) and Snowflake (fakesnow). Each reads the lake a DuckDB refresh wrote, so both
destinations are opted in and must hold the same pseudonyms, after a full refresh and after an
incremental one; nothing a destination holds may name an original subject key or OID, or the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from imednet_assets.defs.modes import INCREMENTAL
from imednet_assets.defs.sinks.graph.resources import GraphDestination
from imednet_assets.defs.sinks.pseudonyms import PSEUDONYMISE_ENV, pseudonymiser
from imednet_assets.defs.sinks.snowflake import sql as snow_sql
from imednet_assets_tests.defs.ingest.conftest import imednet_env, sim  # noqa: F401
from imednet_assets_tests.defs.sinks.graph.conftest import (  # noqa: F401 - fixtures
    GraphSink,
    falkordb_server,
    graph_name,
)
from imednet_assets_tests.defs.sinks.mongodb.conftest import MongoSink, mongo  # noqa: F401
from imednet_assets_tests.defs.sinks.snowflake.conftest import (  # noqa: F401 - fixtures
    snow,
    snowflake_server,
)
from imednet_assets_tests.defs.sinks.test_pseudonymised import (  # noqa: F401 - a fixture
    KEY,
    SHIFT,
    first_study,
    lake_columns,
    metadata,
    originals,
    query,
    refresh,
    settings,
)

pytestmark = pytest.mark.usefixtures("imednet_env")


@dataclass
class Server:
    """One opted-in destination on its server: how to write the study from the lake under
    `tmp_path/lake`, and what it holds afterwards."""

    name: str
    run: Callable[[str], dg.ExecuteInProcessResult]
    text: Callable[[], str]
    """Everything the destination holds (sync state included), as text."""
    subjects: Callable[[], set[tuple]]
    """(subject_key, subject_id, subject_oid) of every subject it holds."""
    records: Callable[[], set[tuple]]
    """(record_id, subject_key) of every record it holds."""
    live: bool = False
    """Holds live subjects and records only (deleted ones are removed, not flagged)."""


def mongodb(tmp_path: Path, request: pytest.FixtureRequest) -> Server:
    sink = MongoSink(tmp_path, request.getfixturevalue("mongo"))

    def collections() -> dict[str, list[dict]]:
        with sink.server.client() as client:
            db = client[sink.database]
            return {c: list(db[c].find().sort("_id", 1))
                    for c in sorted(db.list_collection_names())}

    return Server(
        "mongodb", sink.run, lambda: repr(collections()),
        lambda: {(d["subject_key"], d["subject_id"], d["subject_oid"])
                 for d in sink.docs("subjects")},
        lambda: {(d["record_id"], d["subject_key"]) for d in sink.docs("records")})


def graph(tmp_path: Path, request: pytest.FixtureRequest) -> Server:
    server = request.getfixturevalue("falkordb_server")
    name = request.getfixturevalue("graph_name")
    sink = GraphSink(tmp_path / "lake", GraphDestination(
        falkordb_url=server.url, falkordb_graph=name, batch_size=100))

    def rows(text: str) -> list[list]:
        return server.client().select_graph(name).query(text).result_set

    return Server(
        "graph", sink.run,
        lambda: repr(rows("MATCH (n) RETURN labels(n), properties(n)")
                     + rows("MATCH (n)-[r]->(m) RETURN type(r), properties(r), properties(n), "
                            "properties(m)")),
        lambda: {tuple(r) for r in rows(
            "MATCH (s:Subject) RETURN s.subject_key, s.subject_id, s.subject_oid")},
        lambda: {tuple(r) for r in rows("MATCH (r:Record) RETURN r.record_id, r.subject_key")},
        live=True)


def snowflake(tmp_path: Path, request: pytest.FixtureRequest) -> Server:
    sink = request.getfixturevalue("snow")

    def text() -> str:  # every table, the manifest and the sync state too
        tables = [t for (t,) in sink.execute(snow_sql.list_tables_sql())]
        return repr({t: sink.dump(t) for t in tables}) + repr(sink.staged())

    return Server(
        "snowflake", sink.run, text,
        lambda: set(sink.execute('SELECT "SUBJECT_KEY", "SUBJECT_ID", "SUBJECT_OID" '
                                 'FROM "SUBJECTS"')),
        lambda: set(sink.execute('SELECT DISTINCT "RECORD_ID", "SUBJECT_KEY" '
                                 'FROM "RECORDS_LONG"')))


SERVERS = {"mongodb": mongodb, "graph": graph, "snowflake": snowflake}


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest, tmp_path: Path, settings,  # noqa: F811
           monkeypatch: pytest.MonkeyPatch) -> Server:
    """The destination, opted in together with DuckDB (the settings' key, shift, variables)."""
    monkeypatch.setenv(PSEUDONYMISE_ENV, f"duckdb,{request.param}")
    return SERVERS[request.param](tmp_path, request)


def test_same_pseudonyms_as_duckdb_and_no_original_or_key_after_full_and_incremental_refreshes(
        sim, tmp_path, server):  # noqa: F811
    study, instance = first_study(sim)
    p = pseudonymiser(server.name)
    assert p is not None

    def check(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
        keys, oids, ids = originals(tmp_path, study)
        assert keys and oids and ids
        # the same subjects (key, id, OID), under the same pseudonyms, as the DuckDB file the
        # refresh wrote from the same lake
        live = " WHERE NOT coalesce(deleted, false)" if server.live else ""
        in_duckdb = set(query(tmp_path, "SELECT subject_key, subject_id, subject_oid "
                                        "FROM subjects" + live))
        assert server.subjects() == in_duckdb
        lake = lake_columns(tmp_path, "subjects", study, ["subject_key", "deleted"]).to_pylist()
        pseudonyms = {p.subject_key(study, s["subject_key"]) for s in lake
                      if not (server.live and s["deleted"])}
        assert {k for k, _, _ in in_duckdb} == pseudonyms
        assert not {i for _, i, _ in in_duckdb} & ids
        records = dict(query(tmp_path, "SELECT DISTINCT record_id, subject_key "
                                       "FROM records_long" + live))
        held = dict(server.records())
        assert records and {r: held.get(r) for r in records} == records
        # everything it holds: every pseudonym, never an original subject key or OID, nor the key
        text = server.text()
        assert not [k for k in sorted(pseudonyms) if k not in text]
        assert not [o for o in sorted(keys | oids) if o in text]
        assert KEY not in text
        # its materializations say it is pseudonymised, with the settings, never the key
        meta = metadata(result, server.name)
        assert meta
        for m in meta.values():
            assert m["pseudonymised"] is True
            assert m["pseudonymisation"]["date_shift_days"] == [-SHIFT, SHIFT]
        said = repr(meta)
        assert KEY not in said and not [o for o in sorted(keys | oids) if o in said]
        return meta

    refresh(tmp_path, instance, study, bundles=False)
    check(server.run(study))
    sim.advance(study_key=study, modify=2, add=1, delete=1, delete_subjects=1)
    refresh(tmp_path, instance, study, INCREMENTAL, bundles=False)
    # the changes are applied by key, in pseudonyms (not a rewrite of everything)
    modes = {m["mode"] for m in check(server.run(study)).values()}
    assert "apply" in modes and modes <= {"apply", "skip"}, modes
