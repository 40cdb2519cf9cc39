"""`mongodb/records` `every_record_once` on a real nx-27017 server: passes after a
materialization with exact counts, fails with exact counts and ids after a document is deleted,
ignores other studies."""

from __future__ import annotations

from pathlib import Path

import pytest

from imednet_assets.defs.sinks.mongodb.assets import mongodb_assets
from imednet_assets.defs.sinks.mongodb.checks import mongodb_every_record_once
from imednet_assets_tests.defs.sinks.check_runs import meta, run_check
from imednet_assets_tests.defs.sinks.duckdb.test_assets import study_a
from imednet_assets_tests.defs.sinks.mongodb.conftest import MongoServer, MongoSink

OTHER = "O'Brien; $where: {\"a.b\": 1}"  # another study, with a hostile key


@pytest.fixture
def sink(tmp_path: Path, mongo: MongoServer) -> MongoSink:
    return MongoSink(tmp_path, mongo)


def check(sink: MongoSink, study: str, *, materialize: bool = False):
    return run_check(sink.instance, study, mongodb_every_record_once, sink.resources(),
                     mongodb_assets, materialize=materialize)


def delete(sink: MongoSink, query: dict) -> int:
    with sink.server.client() as client:
        return client[sink.database]["records"].delete_many(query).deleted_count


def test_passes_after_materialization_then_fails_with_exact_counts(sink: MongoSink) -> None:
    study_a(sink)  # 4 records, one deleted (kept, flagged), hostile names, a 100 kB value
    study_a(sink, OTHER)
    sink.run(OTHER)  # the same record ids in another study

    evaluation = check(sink, "A", materialize=True)

    assert evaluation.passed
    assert evaluation.description == "study A: 4 lake records, each one document in records"
    assert meta(evaluation) == {
        "study": "A", "collection": "records",
        "destination": f"MongoDB at {sink.server.uri} (database imednet)",
        "lake_rows": 4, "mongodb_documents": 4, "missing_sample": [], "unexpected_sample": [],
    }

    assert delete(sink, {"_id": "A/3"}) == 1  # the deleted record's document
    evaluation = check(sink, "A")

    assert not evaluation.passed
    assert evaluation.description == "study A: records holds 3 documents, the lake 4 records"
    found = meta(evaluation)
    assert (found["lake_rows"], found["mongodb_documents"]) == (4, 3)
    assert (found["missing_sample"], found["unexpected_sample"]) == ([3], [])
    assert check(sink, OTHER).passed  # the other study is untouched


def test_other_studies_documents_do_not_count(sink: MongoSink) -> None:
    study_a(sink)
    study_a(sink, OTHER)
    sink.run("A")
    sink.run(OTHER)
    assert delete(sink, {"study_key": OTHER}) == 4

    assert check(sink, "A").passed
    evaluation = check(sink, OTHER)
    assert evaluation.description == (
        f"study {OTHER}: records holds 0 documents, the lake 4 records")
    assert meta(evaluation)["missing_sample"] == [1, 2, 3, 4]
