"""Simulator (hostile data) -> ingest -> lake -> MongoDB, two studies: replay, then records and
subjects modified, added, deleted and purged upstream; the collections follow exactly."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from imednet_assets.client.settings import ClientSettings
from imednet_assets.client.sync import fetch_all_sync
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.mongodb.assets import mongodb_assets
from imednet_assets.defs.sinks.mongodb.documents import original_field_name
from imednet_assets.simulator.generator import study_keys
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.defs.sinks.mongodb.conftest import (
    MongoServer,
    MongoSink,
    without_export_time,
)


def test_simulator_to_mongodb_replay_and_upstream_changes(
    tmp_path: Path, mongo: MongoServer
) -> None:
    sink = MongoSink(tmp_path, mongo)
    studies = [key for key, _ in study_keys(2)]
    sink.instance.add_dynamic_partitions("study", studies)
    changed, other = studies
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=10, hostile=True)) as server:
        imednet = ImednetResource(base_url=server.base_url, api_key="k", security_key="s")

        def run(study: str) -> None:
            dg.materialize([*ingest_assets, *mongodb_assets], partition_key=study,
                           instance=sink.instance,
                           resources={"imednet": imednet, **sink.resources(batch_size=50)})

        for study in studies:
            run(study)
        first = sink.snapshot()
        run(changed)  # a full replay: ingest again, then the sink
        assert sink.snapshot() == first

        out = server.advance(study_key=changed, modify=5, add=3, delete=2, purge=4,
                             delete_subjects=1)
        run(changed)
        settings = ClientSettings(base_url=server.base_url, api_key="k", security_key="s")
        served = {s: fetch_all_sync(settings, "records", s) for s in studies}
        subjects = fetch_all_sync(settings, "subjects", changed)

    # the other study's documents did not move at all
    for collection in ("records", "subjects"):
        assert sink.docs(collection, other) == [
            d for d in first[collection] if d["study_key"] == other]

    for study in studies:
        # every record the API serves, once, with every recordData key and value exactly
        docs = {d["record_id"]: d for d in sink.docs("records", study)}
        api = {r["record_id"]: r for r in served[study].to_pylist()}
        assert sorted(docs) == sorted(api)
        for rid, row in api.items():
            data = {original_field_name(k): v for k, v in docs[rid]["record_data"].items()}
            assert data == dict(row["record_data"])
            assert docs[rid]["deleted"] == row["deleted"]
        values = [v or "" for d in docs.values() for v in d["record_data"].values()]
        assert max(len(v) for v in values) >= 100_000
        renamed = {k: v for d in docs.values() for k, v in d.get("renamed_fields", {}).items()}
        assert renamed["lab%2Evalue"] == "lab.value"

    docs = {d["record_id"]: d for d in sink.docs("records", changed)}
    assert not set(out["purged"]) & set(docs)
    assert all(docs[r]["deleted"] for r in set(out["deleted"]) - set(out["purged"]))
    assert set(out["added"]) <= set(docs)
    gone = {d["subject_key"]: d["deleted"] for d in sink.docs("subjects", changed)}
    assert gone == {s["subject_key"]: s["deleted"] for s in subjects.to_pylist()}
    assert all(gone[k] for k in out["deleted_subjects"])

    # the incremental end state equals one clean materialization of the same lake
    clean = MongoSink(tmp_path, mongo, database="clean")
    for study in studies:
        clean.run(study)
    for collection in ("records", "subjects"):
        assert without_export_time(clean.docs(collection)) == without_export_time(
            sink.docs(collection))
