"""Exports from a cut: the same bytes every time, and the frozen data after the live lake moved
on; verifying a cut finds a tampered file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from imednet_assets.cli import main
from imednet_assets.compare import duckdb_dump
from imednet_assets.defs.cuts.export import export_cut, export_lake
from imednet_assets.defs.cuts.manifest import CutError, CutManifest
from imednet_assets.defs.cuts.verify import verify_cut
from imednet_assets.settings import DUCKDB_FILENAME
from imednet_assets_tests.defs.cuts.conftest import Lab, tree

EXPORTS = ("csv.zip", "jsonl.zip", "xlsx", "xpt.zip", "sav.zip", "dta.zip", "odm.xml",
           "transactional.odm.xml")


def files_but_duckdb(folder: Path) -> dict[str, bytes]:
    """Every exported file's bytes but the DuckDB file's (DuckDB files are not byte-stable)."""
    return {k: v for k, v in tree(folder).items() if not k.startswith(DUCKDB_FILENAME)}


def test_cut_exports_same_bytes_and_the_frozen_data_after_the_lake_moved_on(lab: Lab) -> None:
    out = lab.base / "out"
    export_lake(lab.lake, lab.study, out / "live-at-cut")
    lab.cut("frozen")
    token = lab.lake.read_slice("records", lab.study).manifest.token

    lab.sim.advance(study_key=lab.study, modify=3, add=2, delete=1)
    lab.ingest()
    assert lab.lake.read_slice("records", lab.study).manifest.token != token  # it moved on
    export_lake(lab.lake, lab.study, out / "live-now")
    export_cut("frozen", lab.study, out / "first", root=lab.cuts)
    export_cut("frozen", lab.study, out / "second", root=lab.cuts)

    first = files_but_duckdb(out / "first")
    assert sorted(first) == sorted(f"bundles/{lab.study}/{lab.study}.{ext}" for ext in EXPORTS)
    assert first == files_but_duckdb(out / "second")
    # what the cut exports is what the live lake exported when the cut was made, byte for byte
    assert first == files_but_duckdb(out / "live-at-cut")
    assert first != files_but_duckdb(out / "live-now")
    dumps = [duckdb_dump(out / d / DUCKDB_FILENAME, lab.study)
             for d in ("first", "second", "live-at-cut", "live-now")]
    assert dumps[0] and dumps[0] == dumps[1] == dumps[2] != dumps[3]


def test_export_refuses_a_non_empty_folder_and_another_study(lab: Lab) -> None:
    lab.cut("c")
    (lab.base / "busy").mkdir()
    (lab.base / "busy" / "old.txt").write_text("x")
    with pytest.raises(CutError, match=r"busy is not empty: export into a new or empty folder"):
        export_cut("c", lab.study, lab.base / "busy", root=lab.cuts)
    with pytest.raises(CutError) as err:
        export_cut("c", "OTHER", lab.base / "x", root=lab.cuts)
    assert str(err.value) == f"data cut 'c' is of study {lab.study!r}, not 'OTHER'"
    with pytest.raises(CutError, match=r"^no data cut at .*nope \(no manifest.json\)$"):
        export_cut("nope", lab.study, lab.base / "x", root=lab.cuts)


def test_verify_finds_the_tampered_file(lab: Lab) -> None:
    lab.cut("v")
    folder = lab.cuts / "v"
    assert verify_cut("v", lab.cuts).ok
    [victim] = sorted(folder.glob("lake/subjects/*/part-*.parquet"))
    rel = str(victim.relative_to(folder))
    original = victim.read_bytes()
    before = hashlib.sha256(original).hexdigest()
    # a hard link shares the live lake's inode: break it first, as a careless edit would
    os.chmod(victim.parent, 0o755)
    victim.unlink()
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    after = hashlib.sha256(victim.read_bytes()).hexdigest()
    (victim.parent / "extra.parquet").write_bytes(b"x")
    check = verify_cut("v", lab.cuts)
    assert not check.ok
    assert check.problems == (
        f"{victim.parent.relative_to(folder)}/extra.parquet: not in the manifest (added after "
        "the cut was made)",
        f"{rel}: SHA-256 {after}, the manifest says {before}",
    )
    (victim.parent / "extra.parquet").unlink()
    victim.unlink()
    assert verify_cut("v", lab.cuts).problems == (f"{rel}: missing (the manifest lists it)",)


def test_verify_finds_an_edited_manifest(lab: Lab) -> None:
    lab.cut("m")
    path = lab.cuts / "m" / "manifest.json"
    body = json.loads(path.read_text())
    stored = body["content_sha256"]
    body["files"][0]["size"] += 1
    os.chmod(path, 0o644)
    path.write_text(json.dumps(body))
    problems = verify_cut("m", lab.cuts).problems
    recomputed = CutManifest.read(lab.cuts / "m").content_sha256
    assert problems[0] == (f"manifest.json: content SHA-256 {recomputed} of the files it lists, "
                           f"it says {stored}")
    assert problems[1:] == (f"{body['files'][0]['path']}: {body['files'][0]['size'] - 1} bytes, "
                            f"the manifest says {body['files'][0]['size']}",)


def test_cli_cut_export_and_verify(lab: Lab, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IMEDNET_ASSETS_DATA_DIR", str(lab.base))  # cuts under <data dir>/cuts
    lab.cut("cli-1")
    assert main(["cut-verify", "--cut", "cli-1"]) == 0
    assert "files match the manifest" in capsys.readouterr().out
    to = lab.base / "cli-out"
    assert main(["cut-export", "--cut", "cli-1", "--study", lab.study, "--to", str(to)]) == 0
    out = capsys.readouterr().out
    assert f"bundles/{lab.study}/{lab.study}.odm.xml" in out
    assert sorted(files_but_duckdb(to)) == sorted(
        f"bundles/{lab.study}/{lab.study}.{ext}" for ext in EXPORTS)
    assert main(["cut-verify", "--cut", "../etc"]) == 1
    assert capsys.readouterr().err == (
        "imednet-assets cut-verify: cut name '../etc' is refused: use 1 to 128 ASCII letters, "
        "digits, '-', '_' or '.', starting with a letter or digit\n")
    [victim] = sorted((lab.cuts / "cli-1").glob("lake/studies/*/part-*.parquet"))
    os.chmod(victim.parent, 0o755)
    victim.unlink()
    assert main(["cut-verify", "--cut", "cli-1"]) == 1
    err = capsys.readouterr().err
    assert f"{victim.relative_to(lab.cuts / 'cli-1')}: missing (the manifest lists it)" in err
