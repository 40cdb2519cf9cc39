"""Simulator (hostile data) -> ingest -> lake -> DuckDB, two studies; a replay changes nothing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from imednet_assets.client.settings import ClientSettings
from imednet_assets.client.sync import fetch_all_sync
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets.simulator.generator import study_keys
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.defs.sinks.duckdb.conftest import Sink


def test_simulator_to_duckdb_and_replay(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    studies = [key for key, _ in study_keys(2)]
    sink.instance.add_dynamic_partitions("study", studies)
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=10, hostile=True)) as server:
        resources = {
            "imednet": ImednetResource(base_url=server.base_url, api_key="k", security_key="s"),
            "lake_io_manager": LakeIOManager(root=str(sink.lake)),
            **duckdb_resources(sink.db),
        }

        def run(study: str) -> None:
            dg.materialize([*ingest_assets, *duckdb_assets], partition_key=study,
                           instance=sink.instance, resources=resources)

        for study in studies:
            run(study)
        first = sink.snapshot()
        run(studies[0])
        settings = ClientSettings(base_url=server.base_url, api_key="k", security_key="s")
        served = {
            study: fetch_all_sync(settings, "records", study).select(["record_id", "record_data"])
            for study in studies
        }
    assert sink.snapshot() == first

    for study in studies:
        # every answer the API served, odd names and 100 kB values included, is in records_long
        expected = sorted(
            (row["record_id"], key, value)
            for row in served[study].to_pylist()
            for key, value in row["record_data"]
        )
        landed = sink.query(
            "SELECT record_id, variable_name, value FROM records_long WHERE study_key = ? "
            "ORDER BY ALL", [study])
        assert landed == expected
        assert max(len(v or "") for _, _, v in expected) >= 100_000
        assert {"patient weight", "cost$usd", "lab.value", 'say "hi"', "select", "体重"} <= {
            k for _, k, _ in expected}

    for study in studies:
        # every recordData entry is one long row; every record is one row of its form table
        lake_records = str(sink.lake / "records" / f"study_key={study}" / "**" / "*.parquet")
        entries, records = sink.query(
            "SELECT sum(cardinality(record_data)), count(*) "
            "FROM read_parquet(?, hive_partitioning = false)", [lake_records])[0]
        assert records > 0
        assert sink.query("SELECT count(*) FROM records_long WHERE study_key = ?", [study]) == [
            (entries,)]
        tables = [t for (t,) in sink.query("SELECT table_name FROM forms WHERE study_key = ?",
                                           [study])]
        in_forms = sum(sink.query(f'SELECT count(*) FROM "{t}" WHERE study_key = ?',
                                  [study])[0][0] for t in tables)
        assert in_forms == records
