"""The walk over the lake, DuckDB, the CSV bundle, MongoDB (nx-27017) and the graph (FalkorDB),
and a destination down during incremental runs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imednet_assets.defs.modes import FULL, INCREMENTAL
from imednet_assets.defs.sinks.mongodb.definitions import mongodb_resources
from imednet_assets.local_servers import free_port
from imednet_assets.local_servers.falkordb import FalkorServer
from imednet_assets.local_servers.mongodb import NxServer
from imednet_assets_tests.convergence.walk import (
    FILE_TARGETS,
    STEPS,
    Walk,
    graph_target,
    mongodb_target,
    namespace,
    walk_and_compare,
)


@pytest.fixture
def servers() -> Iterator[dict[str, Any]]:
    """nx-27017 and FalkorDB on loopback, data in a temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="imednet-walk-"))
    nx = NxServer(folder / "nx")
    nx.start()
    falkor = FalkorServer().start()
    try:
        yield {"mongodb": nx, "graph": falkor}
    finally:
        falkor.stop()
        nx.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.walk
@pytest.mark.timeout(1800)
def test_files_documents_and_graph_converge_over_a_random_walk(sim, servers, tmp_path):
    targets = [*FILE_TARGETS, mongodb_target(servers["mongodb"]),
               graph_target(servers["graph"])]
    history = walk_and_compare(Walk(sim, targets, tmp_path))
    assert len(history) == STEPS
    assert any("purge" in h for h in history) and any("new_variables" in h for h in history)
    assert any("'tick': False" in h for h in history)


def test_a_destination_down_during_incremental_runs_catches_up_and_holds_no_one_back(
        sim, tmp_path):
    """MongoDB unreachable for two incremental runs: the lake and DuckDB apply the changes
    anyway; once it answers again, one run brings it to exactly a fresh full refresh (its sync
    state is two changes behind; the lake's change log still reaches back)."""
    folder = Path(tempfile.mkdtemp(prefix="imednet-down-"))
    nx = NxServer(folder / "nx")
    nx.start()
    try:
        mongo = mongodb_target(nx)
        up = mongo.resources
        down = {"now": False}
        dead = f"mongodb://127.0.0.1:{free_port()}/"
        kept = tmp_path / "incremental"
        mongo.resources = lambda ns: (  # type: ignore[method-assign]
            mongodb_resources(dead, namespace(ns), max_retries=0)
            if down["now"] and ns == kept else up(ns))
        walk = Walk(sim, [*FILE_TARGETS[:2], mongo], tmp_path)
        study = sorted(sim.stats())[0]
        walk.instance.add_dynamic_partitions("study", [study])
        walk.run(kept, study, FULL)
        down["now"] = True
        for change in ({"modify": 3, "add": 1}, {"delete": 1, "delete_subjects": 1}):
            sim.advance(study_key=study, **change)
            result = walk.run(kept, study, INCREMENTAL, raise_on_error=False)
            failed = sorted(e.step_key for e in result.all_events if e.is_step_failure)
            assert failed == ["mongodb_write"]
            fresh = tmp_path / f"fresh-{change.popitem()[0]}"
            walk.run(fresh, study, FULL)
            mine, theirs = walk.dumps(kept, study), walk.dumps(fresh, study)
            assert mine["lake"] == theirs["lake"] and mine["duckdb"] == theirs["duckdb"]
            assert mine["mongodb"] != theirs["mongodb"]  # behind while down
        down["now"] = False
        result = walk.run(kept, study, INCREMENTAL)
        done = [e.step_materialization_data.materialization
                for e in result.get_asset_materialization_events()]
        modes = {m.asset_key.to_user_string(): m.metadata["mode"].value
                 for m in done if m.asset_key.path[0] == "mongodb"}
        assert modes == {"mongodb/records": "apply", "mongodb/subjects": "apply"}
        assert walk.dumps(kept, study) == walk.dumps(fresh, study)
    finally:
        nx.stop()
        shutil.rmtree(folder, ignore_errors=True)
