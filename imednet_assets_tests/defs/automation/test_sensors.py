"""The study discovery sensor against the real simulator."""

import dagster as dg
import pytest

from imednet_assets.defs.automation.sensors import study_discovery_sensor
from imednet_assets.simulator import SimulatorServer
from imednet_assets_tests.defs.ingest.conftest import imednet_resource

pytestmark = pytest.mark.usefixtures("imednet_env")


def tick(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=instance, resources={"imednet": imednet_resource()})
    return study_discovery_sensor(context)


def test_new_studies_become_partitions_with_a_first_run(sim: SimulatorServer):
    studies = sorted(sim.stats())
    assert len(studies) == 2
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [studies[0]])

    result = tick(instance)
    assert isinstance(result, dg.SensorResult)
    [add] = result.dynamic_partitions_requests
    assert (add.partitions_def_name, list(add.partition_keys)) == ("study", [studies[1]])
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [
        (studies[1], f"study-added:{studies[1]}")
    ]


def test_all_studies_known_skips(sim: SimulatorServer):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", sorted(sim.stats()))
    result = tick(instance)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == "no new studies (2 listed, all known)"


def test_first_tick_on_an_empty_instance_adds_every_study(sim: SimulatorServer):
    instance = dg.DagsterInstance.ephemeral()
    result = tick(instance)
    assert isinstance(result, dg.SensorResult)
    assert list(result.dynamic_partitions_requests[0].partition_keys) == sorted(sim.stats())
    assert [r.partition_key for r in result.run_requests] == sorted(sim.stats())
