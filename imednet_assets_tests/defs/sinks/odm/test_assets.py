"""The ODM assets through Dagster: one step writes both files of the study partition with their
metadata, a replay leaves identical files untouched, and what the lead wires in."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.odm import definitions
from imednet_assets.defs.sinks.odm.assets import odm_assets
from imednet_assets.defs.sinks.odm.definitions import odm_resources
from imednet_assets.defs.sinks.odm.io_manager import OdmIOManager
from imednet_assets_tests.defs.sinks.odm.conftest import (
    Odm,
    check_references,
    hostile_study,
    read_odm,
    validate,
)
from imednet_assets_tests.defs.sinks.runs import materialize_study


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {e.asset_key.to_user_string(): {k: v.value for k, v in
                                           e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def test_materializing_writes_both_files_with_their_metadata(odm: Odm) -> None:
    hostile_study(odm.lake, "A")
    meta = _metadata(odm.run("A"))
    assert sorted(meta) == ["odm/snapshot", "odm/transactional"]
    snapshot, transactional = meta["odm/snapshot"], meta["odm/transactional"]
    assert snapshot["path"] == str(odm.path("A", "snapshot"))
    assert odm.path("A", "snapshot").name == "A.odm.xml"
    assert odm.path("A", "transactional").name == "A.transactional.odm.xml"
    assert (snapshot["dagster/row_count"], snapshot["form_data"]) == (4, 4)
    assert (transactional["audit_records"], transactional["form_data"]) == (8, 9)
    assert snapshot["replaced_characters"] > 0 and snapshot["unchanged"] is False
    for kind in ("snapshot", "transactional"):
        validate(odm.path("A", kind))
        check_references(odm.path("A", kind))
    assert len(read_odm(odm.path("A", "transactional")).forms) == 9
    # nothing but the two files is left in the study folder (the spill and temp are gone)
    assert sorted(p.name for p in (odm.root / "A").iterdir()) == [
        "A.odm.xml", "A.transactional.odm.xml"]


def test_a_replay_keeps_the_same_bytes_and_leaves_the_files_alone(odm: Odm) -> None:
    hostile_study(odm.lake, "A")
    odm.run("A")
    before = {k: (odm.path("A", k).read_bytes(), odm.path("A", k).stat().st_mtime_ns)
              for k in ("snapshot", "transactional")}
    meta = _metadata(odm.run("A"))
    assert {m["unchanged"] for m in meta.values()} == {True}
    assert before == {k: (odm.path("A", k).read_bytes(), odm.path("A", k).stat().st_mtime_ns)
                      for k in ("snapshot", "transactional")}


def test_an_unwritable_root_fails_the_run_with_a_clear_message(odm: Odm, tmp_path: Path) -> None:
    hostile_study(odm.lake, "A")
    odm.root = tmp_path / "file"
    odm.root.write_text("not a folder")
    result = odm.run("A", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_failure)
    assert "ODM XML" in str(failure.event_specific_data) and "cannot write the folder" in str(
        failure.event_specific_data)


def test_build_defs_gives_two_odm_assets_in_one_step() -> None:
    assert definitions.is_configured() is True
    defs = definitions.build_defs()
    [asset] = defs.assets  # type: ignore[misc]
    specs = {s.key.to_user_string(): s for s in asset.specs}
    assert sorted(specs) == ["odm/snapshot", "odm/transactional"]
    for spec in specs.values():
        assert spec.group_name == "odm"
        assert spec.partitions_def == study_partitions
        assert spec.kinds == {"xml"}
    assert asset.op.pool == "odm_writer"
    assert isinstance(defs.resources["odm_io_manager"], OdmIOManager)  # type: ignore[index]
    [check] = defs.asset_checks  # type: ignore[misc]
    assert [(k.asset_key.to_user_string(), k.name) for k in check.check_keys] == [
        ("odm/snapshot", "every_record_once")]


@pytest.mark.parametrize("kind", ["snapshot", "transactional"])
def test_one_asset_alone_can_be_materialized(odm: Odm, kind: str) -> None:
    hostile_study(odm.lake, "A")
    materialize_study(odm.instance, "A", odm_assets,
                      {"lake_io_manager": LakeIOManager(root=str(odm.lake)),
                       **odm_resources(str(odm.root))}, selection=[f"odm/{kind}"])
    assert sorted(p.name for p in (odm.root / "A").iterdir()) == [odm.path("A", kind).name]
