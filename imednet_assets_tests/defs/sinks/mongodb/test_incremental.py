"""Simulator -> incremental lake refresh -> MongoDB against a real nx-27017: changed keys are
applied by key, an unchanged lake is skipped without reading it, a purge rewrites, and the end
state always equals a fresh full refresh into an empty database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.sinks.mongodb import writer
from imednet_assets.defs.sinks.mongodb.assets import mongodb_assets
from imednet_assets.defs.sinks.mongodb.writer import SYNC_STATE_COLLECTION
from imednet_assets_tests.defs.ingest.conftest import imednet_resource
from imednet_assets_tests.defs.sinks.duckdb.conftest import record
from imednet_assets_tests.defs.sinks.mongodb.conftest import (
    MongoServer,
    MongoSink,
    materialization_metadata,
    without_export_time,
    write_logged,
)

pytestmark = pytest.mark.usefixtures("imednet_env")
COLLECTIONS = ("records", "subjects")
COUNTS = ("documents_inserted", "documents_updated", "documents_deleted", "documents_written")
#: Only the lake entities the collections are built from are ingested (keeps the test short).
INGEST = [dg.AssetKey(["imednet", e]) for e in ("records", "subjects", "visits")]


def refresh(sink: MongoSink, study: str, mode: str) -> dg.ExecuteInProcessResult:
    """Ingest the study into the sink's lake (`mode`), then write it to MongoDB."""
    if study not in sink.instance.get_dynamic_partitions("study"):
        sink.instance.add_dynamic_partitions("study", [study])
    return dg.materialize([*ingest_assets, *mongodb_assets],
                          selection=[*INGEST, *(k for a in mongodb_assets for k in a.keys)],
                          partition_key=study,
                          instance=sink.instance, tags=mode_tags(mode),
                          resources={"imednet": imednet_resource(), **sink.resources()})


def study_docs(sink: MongoSink, study: str) -> dict[str, list[dict]]:
    return {c: sink.docs(c, study) for c in COLLECTIONS}


def sync_state(sink: MongoSink) -> list[dict]:
    with sink.server.client() as client:
        return list(client[sink.database][SYNC_STATE_COLLECTION].find().sort("_id", 1))


def modes(result: dg.ExecuteInProcessResult) -> dict[str, tuple[Any, ...]]:
    out = {}
    for name in COLLECTIONS:
        meta = materialization_metadata(result, name)
        out[name] = (meta["mode"], *(meta[k] for k in COUNTS))
    return out


def assert_like_a_fresh_full_refresh(sink: MongoSink, study: str, tmp_path: Path) -> None:
    """A new lake and an empty database, one full refresh: the same documents (all fields but
    `exported_at`, which records when each document was written)."""
    fresh_dir = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}"
    fresh = MongoSink(fresh_dir, sink.server, database=fresh_dir.name)
    refresh(fresh, study, FULL)
    for collection in COLLECTIONS:
        assert without_export_time(sink.docs(collection, study)) == without_export_time(
            fresh.docs(collection, study)), collection


def test_changes_apply_by_key_then_skip_then_purge_rewrites(
    sim, tmp_path: Path, mongo: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = MongoSink(tmp_path, mongo)
    one, other = sorted(sim.stats())
    for study in (one, other):
        first = refresh(sink, study, FULL)
        assert {m[0] for m in modes(first).values()} == {"rewrite"}
    theirs = study_docs(sink, other)
    their_state = [s for s in sync_state(sink) if s["study_key"] == other]
    before = {d["_id"]: d for d in sink.docs("records", one)}

    changed = sim.advance(study_key=one, modify=2, add=1, delete=1, delete_subjects=1)
    result = refresh(sink, one, INCREMENTAL)

    got = modes(result)
    # modified and deleted records are updated in place, the added one inserted
    assert got["records"] == ("apply", 1, 3, 0, 4)
    assert got["subjects"][0] == "apply"
    assert got["subjects"][2] >= 1  # the deleted subject's document, flagged
    records_meta = materialization_metadata(result, "records")
    assert records_meta["keys_changed"] == {"records": 4}
    assert records_meta["mode_reason"] == "4 changed records"
    touched = {f"{one}/{r}" for r in changed["modified"] + changed["added"] + changed["deleted"]}
    after = {d["_id"]: d for d in sink.docs("records", one)}
    # documents of unchanged records were not written again (their export time is the old one)
    assert {i for i in after if after[i] != before.get(i)} == touched
    subjects = {d["subject_key"]: d for d in sink.docs("subjects", one)}
    assert all(subjects[k]["deleted"] for k in changed["deleted_subjects"])
    assert_like_a_fresh_full_refresh(sink, one, tmp_path)

    # nothing changed: skipped without opening a lake file, nothing written
    state, docs = sync_state(sink), study_docs(sink, one)

    def no_reading(self: LakeSlice) -> None:
        raise AssertionError(f"the lake slice of {self.entity} was read")

    with monkeypatch.context() as patched:
        patched.setattr(LakeSlice, "dataset", no_reading)
        again = sink.run(one)
    assert modes(again) == {c: ("skip", 0, 0, 0, 0) for c in COLLECTIONS}
    assert materialization_metadata(again, "records")["dagster/row_count"] == len(after)
    assert (sync_state(sink), study_docs(sink, one)) == (state, docs)

    # a purge makes the lake refresh the slice whole: the destination rewrites it
    purged = sim.advance(study_key=one, purge=1)["purged"]
    result = refresh(sink, one, INCREMENTAL)
    meta = materialization_metadata(result, "records")
    assert (meta["mode"], meta["documents_deleted"]) == ("rewrite", 1)
    assert "does not reach back" in meta["mode_reason"]
    assert f"{one}/{purged[0]}" not in {d["_id"] for d in sink.docs("records", one)}
    assert_like_a_fresh_full_refresh(sink, one, tmp_path)

    # the other study: not a byte moved, its sync state neither
    assert study_docs(sink, other) == theirs
    assert [s for s in sync_state(sink) if s["study_key"] == other] == their_state


def test_a_visit_moving_rewrites_both_subjects_and_a_key_gone_is_deleted(
    tmp_path: Path, mongo: MongoServer
) -> None:
    """Cases the simulator does not make: a changed visit (its subject's document embeds it),
    a visit moving to another subject (the old document must drop it), and a change-logged
    record the slice no longer holds (its document goes)."""
    sink = MongoSink(tmp_path, mongo)
    write_logged(sink.lake, "subjects", "A", [{"subject_id": i, "subject_key": f"S-{i}"}
                                              for i in (1, 2, 3)])
    write_logged(sink.lake, "visits", "A", [{"visit_id": 10, "subject_key": "S-1"},
                                            {"visit_id": 11, "subject_key": "S-2"}])
    write_logged(sink.lake, "records", "A", [record(i, "F0", {"n": str(i)}) for i in (1, 2, 3)])
    sink.run("A")

    # visit 10 moved from S-1 to S-3; record 2 changed, record 3 logged but gone
    write_logged(sink.lake, "visits", "A", [{"visit_id": 10, "subject_key": "S-3"},
                                            {"visit_id": 11, "subject_key": "S-2"}], keys=[10])
    write_logged(sink.lake, "records", "A", [record(1, "F0", {"n": "1"}),
                                             record(2, "F0", {"n": "14"})], keys=[2, 3])
    result = sink.run("A")

    subjects = materialization_metadata(result, "subjects")
    assert (subjects["mode"], subjects["mode_reason"]) == ("apply", "1 changed visits")
    assert (subjects["documents_updated"], subjects["documents_unchanged"]) == (2, 0)
    records = materialization_metadata(result, "records")
    assert (records["mode"], records["documents_updated"], records["documents_deleted"]) == (
        "apply", 1, 1)
    visits = {d["_id"]: [v["visit_id"] for v in d["visits"]] for d in sink.docs("subjects")}
    assert visits == {"A/S-1": [], "A/S-2": [11], "A/S-3": [10]}
    clean = MongoSink(tmp_path, mongo, database="clean")
    clean.run("A")
    for collection in COLLECTIONS:
        assert without_export_time(clean.docs(collection)) == without_export_time(
            sink.docs(collection)), collection


def test_an_apply_dying_half_way_is_applied_again(
    tmp_path: Path, mongo: MongoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state is stored after the documents: a failure in between leaves the old state, so
    the next run applies the same keys again and ends exact."""
    sink = MongoSink(tmp_path, mongo)
    subjects = [{"subject_id": 1, "subject_key": "S-1"}]
    write_logged(sink.lake, "subjects", "A", subjects)
    write_logged(sink.lake, "visits", "A", [{"visit_id": 10, "subject_key": "S-1"}])
    write_logged(sink.lake, "records", "A", [record(i, "F0", {"n": str(i)}) for i in (1, 2)])
    sink.run("A")
    state = sync_state(sink)

    write_logged(sink.lake, "records", "A", [record(1, "F0", {"n": "10"}),
                                             record(2, "F0", {"n": "20"}),
                                             record(3, "F0", {"n": "30"})], keys=[1, 2, 3])

    def boom(collection: str, batch: int) -> None:
        raise RuntimeError("killed after the first batch")

    with monkeypatch.context() as patched:
        patched.setattr(writer, "_after_batch", boom)
        assert not sink.run("A", raise_on_error=False, batch_size=1).success
    # still the old tokens; the stored document count is gone, since the documents changed
    after = sync_state(sink)
    assert [d["tokens"] for d in after] == [d["tokens"] for d in state]
    assert (after[0]["_id"], state[0]["documents"]) == ("records/A", 2)
    assert "documents" not in after[0]
    assert [d["record_data"]["n"] for d in sink.docs("records")] == ["10", "2"]

    meta = materialization_metadata(sink.run("A"), "records")
    assert (meta["mode"], meta["documents_updated"], meta["documents_unchanged"],
            meta["documents_inserted"]) == ("apply", 1, 1, 1)
    # counted, not derived from the count before the failed apply
    assert meta["dagster/row_count"] == len(sink.docs("records")) == 3
    assert sync_state(sink)[0]["documents"] == 3
    clean = MongoSink(tmp_path, mongo, database="clean")
    clean.run("A")
    assert without_export_time(clean.docs("records")) == without_export_time(
        sink.docs("records"))
