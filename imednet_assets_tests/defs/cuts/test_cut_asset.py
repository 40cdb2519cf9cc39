"""The cut asset: the frozen files equal the live slices, read-only, a full manifest, the
metadata the UI shows; names refused; a name never given to other data."""

from __future__ import annotations

import hashlib
import json
import stat

import dagster as dg
import pytest

from imednet_assets.defs.cuts.assets import DATA_CUT_KEY
from imednet_assets.defs.cuts.manifest import CutError, CutManifest, check_name
from imednet_assets.defs.cuts.writer import is_read_only, make_cut
from imednet_assets.defs.ingest.assets import ENTITIES
from imednet_assets.defs.lake.slice import LakeSlice, study_dir
from imednet_assets_tests.defs.cuts.conftest import Lab, tree


def test_cut_freezes_every_slice_whole_and_read_only(lab: Lab) -> None:
    result = lab.cut("interim-2026-06", tags={"dagster/user": "stat@example.org"})
    folder = lab.cuts / "interim-2026-06"
    live_root = lab.lake.root_path()
    frozen = {}
    for entity in ENTITIES:
        live = tree(study_dir(live_root, entity, lab.study))
        mine = tree(study_dir(folder / "lake", entity, lab.study))
        assert mine == live, entity  # every file, byte for byte, the slice manifest too
        frozen.update({f"lake/{entity}/study_key={lab.study}/{k}": v for k, v in mine.items()})
    files = [p for p in folder.rglob("*")]
    assert all(is_read_only(p) for p in [folder, *files])
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in files if p.is_file())

    body = json.loads((folder / "manifest.json").read_text())
    assert body["name"] == "interim-2026-06" and body["study_key"] == lab.study
    assert {f["path"]: (f["size"], f["sha256"]) for f in body["files"]} == {
        rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in frozen.items()}
    lake_marks = {e: lab.lake.read_slice(e, lab.study).manifest.watermark for e in ENTITIES}
    assert body["watermarks"] == lake_marks
    assert lake_marks["records"] is not None
    made_by = body["made_by"]
    assert made_by["run_id"] == result.run_id and made_by["user"] == "stat@example.org"
    assert made_by["tags"]["dagster/user"] == "stat@example.org"

    [event] = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert event.materialization.asset_key == DATA_CUT_KEY
    assert event.materialization.partition == lab.study
    manifest = CutManifest.read(folder)
    assert meta["cut_name"] == "interim-2026-06" and meta["made_now"] is True
    assert meta["manifest_path"] == str(folder / "manifest.json")
    assert meta["file_count"] == len(frozen) == body["file_count"]
    assert meta["total_bytes"] == sum(len(d) for d in frozen.values()) == body["total_bytes"]
    assert meta["watermarks"] == lake_marks
    assert meta["manifest_sha256"] == hashlib.sha256(
        (folder / "manifest.json").read_bytes()).hexdigest()
    assert meta["content_sha256"] == manifest.content_sha256 == body["content_sha256"]


def test_same_name_same_data_is_a_no_op_other_data_an_error(lab: Lab) -> None:
    lab.cut("w1")
    before = tree(lab.cuts / "w1")
    again = lab.cut("w1")
    [event] = again.get_asset_materialization_events()
    assert event.materialization.metadata["made_now"].value is False
    assert tree(lab.cuts / "w1") == before  # untouched: the manifest of the first run stays

    lab.sim.advance(study_key=lab.study, modify=2, add=1)
    lab.ingest()
    failed = lab.cut("w1", raise_on_error=False)
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.description == (
        "data cut 'w1': data cut 'w1' already exists with other content (study "
        f"{lab.study!r}, {len(CutManifest.read(lab.cuts / 'w1').files)} files, made "
        f"{CutManifest.read(lab.cuts / 'w1').created_at}); a cut is never overwritten: "
        "choose another name")
    assert tree(lab.cuts / "w1") == before
    assert [p.name for p in lab.cuts.iterdir()] == ["w1"]  # no staging left behind


@pytest.mark.parametrize("name", [
    "", ".", "..", "../escape", "a/b", "/abs", "-rf", ".staging", "with space", "tab\tname",
    "semi;colon", "ünïcode", "x" * 129, "new\nline", "a\\b", "$(id)",
])
def test_hostile_names_are_refused(name: str) -> None:
    with pytest.raises(CutError) as err:
        check_name(name)
    assert str(err.value) == (
        f"cut name {name!r} is refused: use 1 to 128 ASCII letters, digits, '-', '_' or '.', "
        "starting with a letter or digit")


def test_a_refused_name_fails_the_run_and_writes_nothing(lab: Lab) -> None:
    result = lab.cut("../x", raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events
                 if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.description == (
        "data cut '../x': cut name '../x' is refused: use 1 to 128 ASCII letters, digits, "
        "'-', '_' or '.', starting with a letter or digit")
    assert not lab.cuts.exists() or not any(lab.cuts.iterdir())


@pytest.mark.parametrize("name", ["interim-2026-06", "v1.2_final", "A", "x" * 128])
def test_good_names_pass(name: str) -> None:
    assert check_name(name) == name


class SwapDuringFreeze:
    """The lake, but the first read of records is followed by a new ingest (a swap of the slice
    while the cut copies it)."""

    def __init__(self, lab: Lab) -> None:
        self.lab, self.reads = lab, 0

    def read_slice(self, entity: str, study: str) -> LakeSlice:
        piece = self.lab.lake.read_slice(entity, study)
        if entity == "records":
            self.reads += 1
            if self.reads == 1:
                self.lab.sim.advance(study_key=study, modify=2, add=2)
                self.lab.ingest()
        return piece


def test_a_swap_while_freezing_is_retried_and_the_cut_is_one_version(lab: Lab) -> None:
    reader = SwapDuringFreeze(lab)
    manifest, made = make_cut(reader, lab.study, "racy", ENTITIES, root=lab.cuts)
    assert made and reader.reads == 2
    live = tree(study_dir(lab.lake.root_path(), "records", lab.study))
    assert tree(study_dir(lab.cuts / "racy" / "lake", "records", lab.study)) == live
    assert manifest.slices["records"]["sequence"] == 2  # the version after the swap
