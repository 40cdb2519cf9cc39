"""Simulator (hostile data) -> ingest -> lake -> PostgreSQL, two studies; a replay changes nothing,
and a change upstream followed by a replay gives what a clean load gives."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import httpx
import sqlalchemy as sa

from imednet_assets.client.settings import ClientSettings
from imednet_assets.client.sync import fetch_all_sync
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.resources import ImednetResource
from imednet_assets.defs.sinks.sql.assets import sql_assets
from imednet_assets.simulator.generator import study_keys
from imednet_assets.simulator.server import SimulatorServer
from imednet_assets.simulator.store import SimulatorConfig
from imednet_assets_tests.defs.sinks.sql.conftest import SqlSink


def test_simulator_to_postgres_replay_and_change(pg_sink: SqlSink, tmp_path: Path, pg_url) -> None:
    studies = [key for key, _ in study_keys(2)]
    pg_sink.instance.add_dynamic_partitions("study", studies)
    with SimulatorServer(SimulatorConfig(seed=7, studies=2, subjects=10, hostile=True)) as server:
        imednet = ImednetResource(base_url=server.base_url, api_key="k", security_key="s")

        def run(sink: SqlSink, study: str) -> None:
            dg.materialize([*ingest_assets, *sql_assets], partition_key=study,
                           instance=sink.instance, resources={"imednet": imednet,
                                                              **sink.resources()})

        for study in studies:
            run(pg_sink, study)
        first = pg_sink.snapshot()
        run(pg_sink, studies[0])
        assert pg_sink.snapshot() == first

        settings = ClientSettings(base_url=server.base_url, api_key="k", security_key="s")
        served = fetch_all_sync(settings, "records", studies[0]).select(
            ["record_id", "record_data"])
        expected = sorted((row["record_id"], key, value) for row in served.to_pylist()
                          for key, value in row["record_data"])
        landed = pg_sink.query(
            f'SELECT "record_id", "variable_name", "value" FROM {pg_sink.ref("records_long")} '
            'WHERE "study_key" = :s', {"s": studies[0]})
        assert sorted(landed) == expected  # odd names, unicode and 100 kB values exactly
        assert max(len(v or "") for _, _, v in expected) >= 100_000

        # records change upstream (modified, added, soft-deleted, purged); replay one study
        httpx.post(f"{server.base_url}/_sim/advance",
                   json={"study_key": studies[0], "modify": 5, "add": 3, "delete": 2, "purge": 2},
                   timeout=30).raise_for_status()
        other = {t: pg_sink.dump(t, studies[1]) for t in pg_sink.tables()}
        run(pg_sink, studies[0])
        assert {t: pg_sink.dump(t, studies[1]) for t in pg_sink.tables()} == other

        clean = SqlSink(tmp_path / "clean", pg_url, pg_sink.schema + "_clean")
        clean.lake = pg_sink.lake  # the same lake, loaded into an empty schema
        try:
            clean.instance.add_dynamic_partitions("study", [studies[0]])
            dg.materialize(sql_assets + _upstream(), partition_key=studies[0],
                           instance=clean.instance, resources=clean.resources())
            for table in clean.tables():
                theirs = clean.dicts(table)
                ours = pg_sink.dicts(table, studies[0])
                assert [{k: d[k] for k in theirs[0]} for d in ours] == theirs if theirs else (
                    not ours), table
        finally:
            with clean.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{clean.schema}" CASCADE'))
            clean.close()


def _upstream() -> list[dg.AssetSpec]:
    from imednet_assets.defs.partitions import study_partitions
    from imednet_assets_tests.defs.sinks.duckdb.conftest import ENTITIES

    return [dg.AssetSpec(["imednet", e], partitions_def=study_partitions) for e in ENTITIES]
