"""The study change sensor and the nightly reconcile schedule against the real simulator and a
real lake: one request per study and entity, runs only for studies that changed, ties caught."""

from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.automation.changes import REQUESTS_PER_STUDY
from imednet_assets.defs.automation.schedules import (
    study_full_refresh_schedule,
    study_reconcile_schedule,
)
from imednet_assets.defs.automation.sensors import study_change_sensor
from imednet_assets.defs.modes import (
    CHANGED_ROWS_TAG,
    FULL,
    INCREMENTAL,
    MODE_TAG,
    TRIGGER_TAG,
)
from imednet_assets.simulator import SimulatorServer
from imednet_assets_tests.defs.automation.conftest import job_definitions
from imednet_assets_tests.defs.ingest.test_incremental import (
    assert_like_a_fresh_full_refresh,
    ingest,
    meta,
)

pytestmark = pytest.mark.usefixtures("imednet_env")


@pytest.fixture
def instance(sim: SimulatorServer) -> dg.DagsterInstance:
    inst = dg.DagsterInstance.ephemeral()
    inst.add_dynamic_partitions("study", sorted(sim.stats()))
    return inst


@pytest.fixture
def lake(sim: SimulatorServer, instance: dg.DagsterInstance, tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    for study in sorted(sim.stats()):
        ingest(root, instance, study)
    return root


def tick(instance: dg.DagsterInstance, lake: Path, cursor: str | None = None,
         **knobs) -> dg.SensorResult:
    definitions = job_definitions(lake, **knobs)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=definitions,
                                      resources=definitions.resources)
    result = study_change_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_nothing_changed_skips_with_one_request_per_study_and_entity(sim, instance, lake):
    before = sim.requests()
    result = tick(instance, lake)
    assert REQUESTS_PER_STUDY == 10  # the study, its sites, intervals, forms, variables, ...
    assert sim.requests() - before == 2 * REQUESTS_PER_STUDY
    assert not result.run_requests
    assert result.skip_reason is not None
    assert result.skip_reason.skip_message == "no changes in 2 studies probed (20 requests)"


def test_a_changed_study_gets_an_incremental_run_the_other_none(sim, instance, lake):
    one, _ = sorted(sim.stats())
    sim.advance(study_key=one, modify=1)
    [request] = tick(instance, lake).run_requests
    assert request.partition_key == one
    assert request.tags[MODE_TAG] == INCREMENTAL
    assert request.tags[TRIGGER_TAG] == "study_change_sensor"
    assert request.run_key.startswith(f"{one}:")
    # the same change asked twice is the same run key: Dagster never launches it twice
    assert tick(instance, lake).run_requests[0].run_key == request.run_key


def test_the_request_counts_the_rows_its_run_reads(sim, instance, lake, tmp_path):
    one, _ = sorted(sim.stats())
    sim.advance(study_key=one, modify=7)
    [request] = tick(instance, lake).run_requests
    counted = dict(item.split("=") for item in request.tags[CHANGED_ROWS_TAG].split(","))
    # only the entities read by their watermark: the metadata is read whole
    assert sorted(counted) == ["record_revisions", "records"]
    # pages of 2: the run starts the 4 or more pages of each together with its first
    result = ingest(lake, instance, one, INCREMENTAL, tags=dict(request.tags), page_size=2)
    for entity, rows in counted.items():
        assert meta(result, entity)["mode_reason"].startswith(f"read {rows} rows with ")
    assert meta(result, "records")["rows_updated"] == 7
    assert_like_a_fresh_full_refresh(lake, one, tmp_path)


def test_a_tie_in_the_watermark_second_is_seen_and_lands(sim, instance, lake, tmp_path):
    one, _ = sorted(sim.stats())
    first = sim.advance(study_key=one, modify=1)["modified"]
    ingest(lake, instance, one, INCREMENTAL)  # the pull: the mark is now that second
    assert not tick(instance, lake).run_requests
    second = sim.advance(study_key=one, modify=1, tick=False)["modified"]  # same second
    assert second != first
    [request] = tick(instance, lake).run_requests
    assert request.partition_key == one
    result = ingest(lake, instance, one, INCREMENTAL)
    assert meta(result, "records")["rows_updated"] == 1
    assert_like_a_fresh_full_refresh(lake, one, tmp_path)


def test_the_budget_spreads_studies_over_ticks(sim, instance, lake):
    one, other = sorted(sim.stats())
    sim.advance(study_key=one, modify=1)
    sim.advance(study_key=other, modify=1)
    before = sim.requests()
    first = tick(instance, lake, probe_budget=REQUESTS_PER_STUDY)
    assert sim.requests() - before == REQUESTS_PER_STUDY
    second = tick(instance, lake, cursor=first.cursor, probe_budget=REQUESTS_PER_STUDY)
    third = tick(instance, lake, cursor=second.cursor, probe_budget=REQUESTS_PER_STUDY)
    assert [r.partition_key for r in first.run_requests + second.run_requests] == [one, other]
    assert [r.partition_key for r in third.run_requests] == [one]


def test_reconcile_schedule_asks_an_incremental_run_of_every_study(sim):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("study", sorted(sim.stats()))
        # as a context manager: the context enters an instance of its own from the ref, and
        # only its exit closes it (else Dagster's current defs-state storage dangles)
        with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=datetime(2026, 6, 1, 2)) as context:
            requests = list(study_reconcile_schedule(context))
    assert [(r.partition_key, r.run_key, r.tags[MODE_TAG]) for r in requests] == [
        (s, f"reconcile:{s}:2026-06-01", INCREMENTAL) for s in sorted(sim.stats())
    ]


def test_weekly_full_refresh_asks_a_full_run_of_every_study_once_a_week(sim):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("study", sorted(sim.stats()))
        runs = []
        for day in (datetime(2026, 6, 7, 3), datetime(2026, 6, 14, 3)):  # two Sundays
            with dg.build_schedule_context(instance=instance,
                                           scheduled_execution_time=day) as context:
                runs.append(list(study_full_refresh_schedule(context)))
    assert [[(r.partition_key, r.run_key, r.tags[MODE_TAG]) for r in week] for week in runs] == [
        [(s, f"full-refresh:{s}:2026-W{week}", FULL) for s in sorted(sim.stats())]
        for week in (23, 24)
    ]
