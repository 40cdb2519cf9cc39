"""Lake -> MongoDB through Dagster against a real nx-27017 server: replay, changes, hostile data,
server down, bad credentials, a server killed mid-partition, insert mode."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.sinks.mongodb import writer
from imednet_assets.defs.sinks.mongodb.documents import original_field_name
from imednet_assets.defs.sinks.mongodb.resources import MongoDestination
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, write_lake, write_study
from imednet_assets_tests.defs.sinks.mongodb.conftest import (
    MongoServer,
    MongoSink,
    free_port,
    materialization_metadata,
    step_failure,
    without_export_time,
)

HOSTILE = {"patient weight": "70", "cost$usd": "$1.5", "lab.value": "3.2", "$where": "1",
           'say "hi"': "it's", "select": "drop table", "体重": "七十", "%2E": "pct",
           "nested": '{"a": [1, {"b": null}]}', "big": "é" * 100_000, "blank": ""}
FAST = {"server_selection_timeout_ms": 500, "max_retries": 1, "retry_backoff_s": 0.0}


def _records(study: str, ids: range, changed: int | None = None) -> list[dict]:
    return [record(i, f"F{i % 2}", {**HOSTILE, "n": str(i * 10 + (i == changed))})
            for i in ids]


def _study(sink: MongoSink, study: str, records: list[dict]) -> None:
    write_study(sink.lake, study, ["F0", "F1"], [], records)


def _materialized(sink: MongoSink, study: str) -> bool:
    return study in sink.instance.get_materialized_partitions(dg.AssetKey(["mongodb", "records"]))


def test_replay_changes_nothing_and_equals_a_clean_run(tmp_path: Path, mongo: MongoServer) -> None:
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 8)))
    _study(sink, "BETA.2 $x", _records("BETA", range(1, 4)))
    sink.run("ALPHA")
    sink.run("BETA.2 $x")
    first = sink.snapshot()
    replay = sink.run("ALPHA")

    assert sink.snapshot() == first  # byte for byte, exported_at included
    meta = materialization_metadata(replay, "records")
    assert {k: meta[k] for k in ("dagster/row_count", "documents_written", "documents_unchanged",
                                 "documents_deleted", "batches")} == {
        "dagster/row_count": 7, "documents_written": 0, "documents_unchanged": 7,
        "documents_deleted": 0, "batches": 0}

    clean = MongoSink(tmp_path, mongo, database="clean")
    clean.run("BETA.2 $x")
    clean.run("ALPHA")
    for collection in ("records", "subjects"):
        assert without_export_time(clean.docs(collection)) == without_export_time(
            first[collection])
    assert [d["_id"] for d in first["records"]] == sorted(
        [f"ALPHA/{i}" for i in range(1, 8)] + [f"BETA.2 $x/{i}" for i in range(1, 4)])
    assert [d["_id"] for d in first["subjects"]] == ["ALPHA/S-1", "BETA.2 $x/S-1"]
    assert first["subjects"][0]["visits"] == [
        {k: None for k in ("interval_id", "interval_name", "subject_id", "start_date",
                           "end_date", "due_date", "visit_date", "visit_date_form",
                           "visit_date_question", "deleted", "date_created", "date_modified",
                           "extra")} | {"visit_id": 10, "subject_key": "S-1"}]


def test_changes_land_exactly_and_the_other_study_is_untouched(
    tmp_path: Path, mongo: MongoServer
) -> None:
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 8)))
    _study(sink, "BETA", _records("BETA", range(1, 4)))
    sink.run("ALPHA")
    sink.run("BETA")
    before = {d["_id"]: d for d in sink.docs("records")}
    beta_before = sink.docs("records", "BETA") + sink.docs("subjects", "BETA")

    # record 2 purged upstream, 3 changed, 4 soft-deleted, 9 new
    changed = _records("ALPHA", [1, 3, 4, 5, 6, 7, 9], changed=3)
    next(r for r in changed if r["record_id"] == 4)["deleted"] = True
    _study(sink, "ALPHA", changed)
    result = sink.run("ALPHA")

    meta = materialization_metadata(result, "records")
    assert {k: meta[k] for k in ("dagster/row_count", "documents_inserted", "documents_updated",
                                 "documents_unchanged", "documents_deleted")} == {
        "dagster/row_count": 7, "documents_inserted": 1, "documents_updated": 2,
        "documents_unchanged": 4, "documents_deleted": 1}
    after = {d["_id"]: d for d in sink.docs("records", "ALPHA")}
    assert sorted(after) == [f"ALPHA/{i}" for i in (1, 3, 4, 5, 6, 7, 9)]
    assert after["ALPHA/3"]["record_data"]["n"] == "31"
    assert after["ALPHA/4"]["deleted"] is True
    for i in (1, 5, 6, 7):  # untouched documents keep their export time
        assert after[f"ALPHA/{i}"] == before[f"ALPHA/{i}"]
    assert sink.docs("records", "BETA") + sink.docs("subjects", "BETA") == beta_before

    clean = MongoSink(tmp_path, mongo, database="clean")
    clean.run("ALPHA")
    assert without_export_time(clean.docs("records")) == without_export_time(list(after.values()))


def test_hostile_names_and_values_round_trip(tmp_path: Path, mongo: MongoServer) -> None:
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 3)))
    sink.run("ALPHA")
    for doc in sink.docs("records"):
        renamed = doc["renamed_fields"]
        assert renamed == {"lab%2Evalue": "lab.value", "%24where": "$where", "%252E": "%2E"}
        restored = {renamed.get(k, k): v for k, v in doc["record_data"].items()}
        assert {original_field_name(k): v for k, v in doc["record_data"].items()} == restored
        expected = {"dateCreated": "2024-04-09 16:40:03", "dateModified": "2024-04-10 07:12:48",
                    "unvnum": "", **HOSTILE, "n": str(doc["record_id"] * 10)}
        assert restored == expected
        assert list(restored) == list(expected)  # the API's key order is kept too
    with mongo.client() as client:  # the safe names are queryable
        assert client["imednet"]["records"].count_documents(
            {"record_data.lab%2Evalue": "3.2", "record_data.cost$usd": "$1.5"}) == 2


def test_server_down_at_start_is_a_configuration_error(tmp_path: Path, mongo: MongoServer) -> None:
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 3)))
    port = free_port()
    result = sink.run("ALPHA", raise_on_error=False, uri=f"mongodb://127.0.0.1:{port}/", **FAST)
    assert not result.success
    assert step_failure(result) == (
        f"MongoDB at mongodb://127.0.0.1:{port}/ (database imednet) is unreachable: "
        "no server answered within 0.5 s")
    assert not _materialized(sink, "ALPHA")


def test_refused_credentials_fail_before_any_data_and_never_show_the_password(
    tmp_path: Path, mongo: MongoServer
) -> None:
    # nx-27017 has no users: a SCRAM handshake with it fails, as wrong credentials would
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 3)))
    uri = f"mongodb://alice:pa55-w0rd@127.0.0.1:{mongo.port}/"
    result = sink.run("ALPHA", raise_on_error=False, uri=uri, **FAST)
    message = step_failure(result)
    assert message.startswith(
        f"MongoDB at mongodb://***@127.0.0.1:{mongo.port}/ (database imednet) refused the "
        "connection or the credentials: ")
    logs = "\n".join(str(e) for e in result.all_events)
    assert "pa55-w0rd" not in message and "pa55-w0rd" not in logs
    assert "pa55-w0rd" not in repr(MongoDestination(uri=uri))
    assert sink.docs("records") == [] and not _materialized(sink, "ALPHA")


def test_metadata_never_holds_the_uri_credentials(tmp_path: Path, mongo: MongoServer) -> None:
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 3)))
    result = sink.run("ALPHA")
    meta = materialization_metadata(result, "records")
    assert meta["destination"] == mongo.uri and meta["collection"] == "imednet.records"
    assert meta["documents_inserted"] == 2 and meta["batches"] == 1


def test_server_killed_mid_partition_then_back_ends_exact(
    tmp_path: Path, mongo: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 11)))
    _study(sink, "BETA", _records("BETA", range(1, 4)))
    sink.run("BETA")

    def crash(collection: str, batch: int) -> None:
        if collection == "records" and batch == 2:
            mongo.stop()

    monkeypatch.setattr(writer, "_after_batch", crash)
    result = sink.run("ALPHA", raise_on_error=False, batch_size=3, **FAST)
    assert not result.success
    message = step_failure(result)
    assert message.startswith(
        f"MongoDB at {mongo.uri} (database imednet), collection records: study ALPHA, "
        "batch 3 of 4 failed after 2 attempt(s): ")
    assert not _materialized(sink, "ALPHA")

    monkeypatch.setattr(writer, "_after_batch", lambda collection, batch: None)
    mongo.start()
    assert len(sink.docs("records", "ALPHA")) == 6  # two batches of three landed before the crash
    sink.run("ALPHA", batch_size=3)

    clean = MongoSink(tmp_path, mongo, database="clean")
    clean.run("BETA")
    clean.run("ALPHA")
    assert without_export_time(sink.docs("records")) == without_export_time(clean.docs("records"))
    assert without_export_time(sink.docs("subjects")) == without_export_time(
        clean.docs("subjects"))
    assert len(sink.docs("records", "ALPHA")) == 10


def test_insert_mode_replays_to_the_same_documents(tmp_path: Path, mongo: MongoServer) -> None:
    sink = MongoSink(tmp_path, mongo)
    _study(sink, "ALPHA", _records("ALPHA", range(1, 6)))
    _study(sink, "BETA", _records("BETA", range(1, 3)))
    sink.run("BETA", upsert=False)
    sink.run("ALPHA", upsert=False)
    first = sink.snapshot()
    write_lake(sink.lake, "records", "ALPHA", _records("ALPHA", range(1, 5)))
    result = sink.run("ALPHA", upsert=False, batch_size=2)
    meta = materialization_metadata(result, "records")
    assert (meta["documents_inserted"], meta["documents_deleted"], meta["batches"]) == (4, 5, 2)
    assert without_export_time(sink.docs("records")) == [
        d for d in without_export_time(first["records"]) if d["_id"] != "ALPHA/5"]
