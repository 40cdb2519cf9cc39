"""The change sensor's runs materialize only what changed, what reads it and what is behind,
against the real simulator, lake and DuckDB; each run ends like a full refresh from scratch."""

from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.compare import duckdb_dump
from imednet_assets.defs.automation.selection import run_selection
from imednet_assets.defs.automation.sensors import ALL_JOB_NAME, study_change_sensor
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.demo import QUIET_CONSOLE
from imednet_assets_tests.defs.automation.conftest import job_definitions
from imednet_assets_tests.defs.ingest.test_incremental import lake_tables

pytestmark = pytest.mark.usefixtures("imednet_env")


class Deployment:
    """A lake and a DuckDB file under one folder, with the instance that records their runs."""

    def __init__(self, root: Path, study: str) -> None:
        self.root, self.study = root, study
        self.definitions = job_definitions(root / "lake", root / "sink.duckdb")
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions("study", [study])

    def run(self, tags: dict[str, str], selection: list[dg.AssetKey] | None = None,
            checks: list[dg.AssetCheckKey] | None = None) -> dg.ExecuteInProcessResult:
        job = self.definitions.resolve_job_def(ALL_JOB_NAME)
        if selection is not None:
            job = job.get_subset(asset_selection=set(selection),
                                 asset_check_selection=set(checks or []))
        return job.execute_in_process(partition_key=self.study, instance=self.instance,
                                      tags=tags, run_config=QUIET_CONSOLE)

    def tick(self) -> dg.SensorResult:
        with dg.build_sensor_context(instance=self.instance, definitions=self.definitions,
                                     resources=self.definitions.resources) as context:
            result = study_change_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def launch(self) -> list[str]:
        """Tick; run what the sensor asks (at most one run); the materialized assets."""
        requests = self.tick().run_requests or []
        assert len(requests) <= 1
        if not requests:
            return []
        [request] = requests
        result = self.run(dict(request.tags), list(request.asset_selection or []),
                          list(request.asset_check_keys or []))
        assert result.success
        return sorted(e.asset_key.to_user_string()
                      for e in result.get_asset_materialization_events())

    def tables(self) -> dict[str, object]:
        """The study's lake and DuckDB tables, whole (columns compared by name)."""
        return {"lake": lake_tables(self.root / "lake", self.study),
                "duckdb": duckdb_dump(self.root / "sink.duckdb", self.study)}


@pytest.fixture
def study(sim) -> str:
    return sorted(sim.stats())[0]


def fresh(tmp_path: Path, study: str) -> dict[str, object]:
    """A full refresh into an empty folder: what every run must end equal to."""
    deployment = Deployment(tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}", study)
    assert deployment.run(mode_tags(FULL)).success
    return deployment.tables()


def test_a_records_change_materializes_records_revisions_and_what_reads_them(
        sim, study, tmp_path):
    kept = Deployment(tmp_path / "kept", study)
    assert kept.run(mode_tags(FULL)).success
    sim.advance(study_key=study, modify=2)
    assert kept.launch() == ["duckdb/form_tables", "duckdb/record_revisions",
                             "duckdb/records_long", "imednet/record_revisions",
                             "imednet/records"]
    assert kept.tables() == fresh(tmp_path, study)
    assert kept.launch() == []  # and then nothing is left to do


def test_a_new_variable_brings_the_metadata_that_changed(sim, study, tmp_path):
    kept = Deployment(tmp_path / "kept", study)
    assert kept.run(mode_tags(FULL)).success
    sim.advance(study_key=study, new_variables=1)
    # the new question's column: every table built from the variables, no other entity read
    assert kept.launch() == ["duckdb/form_tables", "duckdb/forms", "duckdb/records_long",
                             "duckdb/variables", "imednet/variables"]
    assert kept.tables() == fresh(tmp_path, study)


def test_an_asset_left_behind_is_selected_until_it_caught_up(sim, study, tmp_path):
    kept = Deployment(tmp_path / "kept", study)
    assert kept.run(mode_tags(FULL)).success
    # the subjects changed and only the lake took them (its DuckDB write did not happen)
    sim.advance(study_key=study, delete_subjects=1)
    assert kept.run(mode_tags(INCREMENTAL), [dg.AssetKey(["imednet", "subjects"])]).success
    sim.advance(study_key=study, modify=1)
    assert "duckdb/subjects" in kept.launch()
    assert kept.tables() == fresh(tmp_path, study)
    assert kept.launch() == []


def test_a_run_checks_its_assets_with_the_job_s_own_checks(monkeypatch, tmp_path):
    monkeypatch.setenv("IMEDNET_ASSETS_DATA_DIR", str(tmp_path))
    from imednet_assets.definitions import defs

    job = defs.resolve_job_def(ALL_JOB_NAME)
    instance = dg.DagsterInstance.ephemeral()
    got = run_selection(instance, job, "S1", ["records"])
    assets = {k.to_user_string() for k in got.assets}
    # nothing was ever materialized for S1: every destination asset is behind, no other entity
    assert {"imednet/records", "duckdb/subjects", "duckdb/form_tables"} <= assets
    assert not {"imednet/subjects", "imednet/variables"} & assets
    checks = {(c.asset_key.to_user_string(), c.name) for c in got.checks}
    assert ("imednet/records", "lake_matches_api") in checks
    assert ("duckdb/form_tables", "every_record_once") in checks
    # the freshness check looks at every study at once: kept out of the job, kept out here
    assert ("imednet/records", "lake_is_fresh") not in checks
    assert ("imednet/subjects", "lake_matches_api") not in checks
