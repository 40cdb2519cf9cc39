"""Simulator (hostile data) -> ingest -> lake -> DuckDB for two studies; a replay changes nothing.

Skipped until the client's sync iterator (used by the ingest assets) has landed.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

pytest.importorskip("imednet_assets.client.sync", reason="ingest needs the client's sync module")

from imednet_assets.defs.ingest.assets import ingest_assets  # noqa: E402
from imednet_assets.defs.lake.io_manager import LakeIOManager  # noqa: E402
from imednet_assets.defs.resources import ImednetResource  # noqa: E402
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets  # noqa: E402
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources  # noqa: E402
from imednet_assets.simulator.generator import study_keys  # noqa: E402
from imednet_assets.simulator.server import SimulatorServer  # noqa: E402
from imednet_assets.simulator.store import SimulatorConfig  # noqa: E402
from imednet_assets_tests.defs.sinks.duckdb.conftest import Sink  # noqa: E402


def test_simulator_to_duckdb_and_replay(tmp_path: Path) -> None:
    sink = Sink(tmp_path)
    studies = [key for key, _ in study_keys(2)]
    sink.instance.add_dynamic_partitions("study", studies)
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=4, hostile=True)) as server:
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
    assert sink.snapshot() == first

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
