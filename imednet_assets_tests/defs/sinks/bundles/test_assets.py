"""Bundle assets over real lake folders, run through Dagster, read back with csv, openpyxl, json."""

from __future__ import annotations

import datetime as dt
import os
import zipfile

import pytest

from imednet_assets.defs.sinks.bundles import csv_zip, jsonl, xlsx
from imednet_assets.defs.sinks.bundles.io_manager import stale_temporaries
from imednet_assets_tests.defs.sinks.bundles.checks import check_all, xlsx_information
from imednet_assets_tests.defs.sinks.bundles.conftest import (
    FORMATS,
    Bundles,
    read_csv_zip,
    read_json_zip,
    read_xlsx,
)
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, variable, write_study
from imednet_assets_tests.defs.sinks.duckdb.test_assets import BIG, HOSTILE, LONG_NAME

CHANGED = dt.datetime(2024, 5, 1, 8, 30, 0)


def hostile_study(bundles: Bundles, study: str = "A", extra: str = "") -> None:
    """Formula-looking text, quotes, control characters, unicode, a 52,000-character value,
    clashing names and labels, a 120-character name, NaN and infinite numbers."""
    variables = [
        variable(1, "VS", "sysbp", "NUMBER", "Systolic BP"),
        variable(2, "VS", "vsdt", "DATE", "Visit date"),
        variable(3, "VS", "vstm", "DATETIME", "Visit time"),
        variable(4, "VS", "smoker", "CHECKBOX", "=Smoker?"),
        variable(5, "VS", HOSTILE, "MEMO", "Notes"),
        variable(6, "VS", "体重", "NUMBER", "Weight"),
        variable(7, "VS", "wt2", "NUMBER", "weight"),
        variable(8, "VS", LONG_NAME, "TEXT", "Long"),
        variable(9, "VS", "select", "TEXT", "select"),
        variable(10, "VS", "record_id", "TEXT", "Record"),
        variable(20, "=evil", "ans", "TEXT", "Answer"),
    ]
    records = [
        record(1, "VS", {"sysbp": "-5", "vsdt": "2024-04-09", "vstm": "2024-04-09 16:40:03",
                         "smoker": "true", HOSTILE: BIG, "体重": "72.5", "wt2": "NaN",
                         LONG_NAME: "=1+1", "select": "+cmd|' /C calc'!A0",
                         "record_id": "@SUM(A1)"}, date_modified=CHANGED),
        record(2, "VS", {"sysbp": "1e400", "vsdt": "1899-12-31", "smoker": "FALSE",
                         HOSTILE: 'multi\nline, "quoted", ;semi', "体重": "", "wt2": "-3.5",
                         LONG_NAME: "\t=tab", "select": " lead and trail ",
                         "record_id": "_x0041_ ctl\x01\x07"}),
        record(3, "VS", {"sysbp": "120" + extra, "select": "-", "record_id": None,
                         HOSTILE: "体重 😀 ﷽"}, deleted=True),
        record(4, "=evil", {"ans": "=HYPERLINK(\"http://x\",\"y\")"}, parent_record_id=1),
    ]
    write_study(bundles.lake, study, ["VS", "=evil", "EMPTY"], variables, records)


def test_every_cell_of_every_bundle_equals_the_lake(bundles: Bundles) -> None:
    hostile_study(bundles)
    result = bundles.run("A")
    headers = check_all(bundles, "A")

    # names mode: variable names as the EDC spells them; clashes take the column name
    assert headers["json"]["form_VS"][11:] == [
        HOSTILE, LONG_NAME, "record_id_2", "select", "smoker", "smoker__raw", "sysbp",
        "sysbp__raw", "vsdt", "vsdt__raw", "vstm", "vstm__raw", "wt2", "wt2__raw", "体重",
        "体重__raw",
    ]
    assert headers["csv"]["form_VS"][:11] == headers["json"]["form_VS"][:11] == [
        "study_key", "record_id", "subject_key", "visit_id", "interval_id", "site_id",
        "parent_record_id", "record_status", "deleted", "date_created", "date_modified"]

    meta = {e.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert sorted(meta) == sorted(FORMATS)
    for fmt, values in meta.items():
        assert values["dagster/row_count"].value == 4
        assert values["rows_by_form"].value == {"form_EMPTY": 0, "form_VS": 3, "form_evil": 1}
        assert values["path"].value == str(bundles.path("A", fmt))
        assert values["unchanged"].value is False
        assert values["headers"].value == "names"
    assert meta["xlsx"]["cut_cells"].value == 1
    assert meta["xlsx"]["sheets"].value == {
        "form_EMPTY": ["EMPTY"], "form_VS": ["VS"], "form_evil": ["=evil"]}


def test_hostile_cells_are_exact_and_formulas_neutralised(bundles: Bundles) -> None:
    hostile_study(bundles)
    bundles.run("A")

    raw = zipfile.ZipFile(bundles.path("A", "csv")).read("form_VS.csv").decode()
    lines = raw.split("\r\n")
    assert lines[0].startswith('"study_key","record_id",')
    # text is always quoted: an empty text ("") differs from a missing value (nothing)
    assert ',"-5","-5",' not in raw and ',-5,"-5",' in raw  # typed sysbp -5, raw "-5"
    assert '"\'=1+1"' in raw and '"\'+cmd|\' /C calc\'!A0"' in raw and '"\'@SUM(A1)"' in raw
    assert '"\'\t=tab"' in raw and '" lead and trail "' in raw
    assert '"multi\nline, ""quoted"", ;semi"' in raw
    assert lines[2].endswith(',"-3.5",,""')  # record 2: 体重 missing (nothing), 体重__raw ""

    csv_rows = read_csv_zip(bundles.path("A", "csv"))["form_VS.csv"]
    header, rows = csv_rows
    row1 = dict(zip(header, rows[0], strict=True))
    assert row1["smoker"] == "true" and row1["vsdt"] == "2024-04-09"
    assert row1["vstm"] == "2024-04-09 16:40:03" and row1["体重"] == "72.5"
    assert row1["wt2"] == "" and row1["wt2__raw"] == "NaN"  # NaN is no number: raw text kept
    assert row1[HOSTILE] == BIG  # the full 52,000 characters
    row2 = dict(zip(header, rows[1], strict=True))
    assert row2["sysbp"] == "" and row2["sysbp__raw"] == "1e400"
    assert row2["record_id_2"] == "_x0041_ ctl\x01\x07"
    assert row2["wt2"] == "-3.5"

    sheets = read_xlsx(bundles.path("A", "xlsx"))
    vs = sheets["VS"]
    cells = dict(zip(vs[0], vs[1], strict=True))
    assert cells[LONG_NAME] == "'=1+1" and cells["select"] == "'+cmd|' /C calc'!A0"
    assert cells["sysbp"] == -5 and cells["smoker"] is True
    assert cells["vstm"] == dt.datetime(2024, 4, 9, 16, 40, 3)
    assert cells["vsdt"] == dt.datetime(2024, 4, 9) and cells["date_modified"] == CHANGED
    assert cells[HOSTILE].startswith("é" * 32_000) and "[cut: 52000 characters" in cells[HOSTILE]
    cells2 = dict(zip(vs[0], vs[2], strict=True))
    assert cells2["vsdt"] == "1899-12-31"  # before Excel's calendar: ISO text, not a number
    assert cells2["record_id_2"] == "_x0041_ ctl\x01\x07"  # as Excel shows it
    assert cells2["select"] == " lead and trail "
    assert sheets["=evil"][1][-1] == '\'=HYPERLINK("http://x","y")'

    objects = read_json_zip(bundles.path("A", "json"))
    first = objects["form_VS.jsonl"][0]
    assert first[LONG_NAME] == "=1+1" and first["select"] == "+cmd|' /C calc'!A0"
    assert first["sysbp"] == -5.0 and first["wt2"] is None and first["wt2__raw"] == "NaN"
    assert first["vsdt"] == "2024-04-09" and first["vstm"] == "2024-04-09T16:40:03"
    assert first[HOSTILE] == BIG
    assert objects["form_evil.jsonl"][0]["ans"] == '=HYPERLINK("http://x","y")'


def test_information_sheet_and_files_say_study_time_counts_source_and_cuts(
    bundles: Bundles,
) -> None:
    hostile_study(bundles)
    bundles.run("A")
    newest = max(p.stat().st_mtime for p in bundles.lake.rglob("*") if p.is_file()
                 and p.parts[-3 if "form_key=" in str(p) else -2].startswith("study_key=")
                 and p.parts[len(bundles.lake.parts)] in (
                     "forms", "variables", "subjects", "visits", "records"))
    extracted = dt.datetime.fromtimestamp(int(newest), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    facts, forms, cuts = xlsx_information(read_xlsx(bundles.path("A", "xlsx"))["information"])
    assert facts == {
        "study_key": "A", "study_name": "Study A", "extraction_time_utc": extracted,
        "latest_record_change": "2024-05-01 08:30:00",
        "source": "iMednet EDC (through the imednet-assets Parquet lake)", "headers": "names",
        "formula_neutralisation":
            "text starting with = + - @ tab or CR has a leading ' (numerals excepted)",
        "cut_cells": 1,
    }
    assert forms == [("'=evil", "Form =evil", "form_evil", "'=evil", 1),
                     ("EMPTY", "Form EMPTY", "form_EMPTY", "EMPTY", 0),
                     ("VS", "Form VS", "form_VS", "VS", 3)]
    assert cuts == [("VS", "L2", HOSTILE, 1, 52_000)]

    csv_members = read_csv_zip(bundles.path("A", "csv"))
    assert csv_members["forms.csv"] == (
        ["form_key", "form_name", "table_name", "file", "rows"],
        [["'=evil", "Form =evil", "form_evil", "form_evil.csv", "1"],
         ["EMPTY", "Form EMPTY", "form_EMPTY", "form_EMPTY.csv", "0"],
         ["VS", "Form VS", "form_VS", "form_VS.csv", "3"]])
    assert dict(csv_members["information.csv"][1])["extraction_time_utc"] == extracted
    info = read_json_zip(bundles.path("A", "json"))["information.json"]
    assert info["formula_neutralisation"] == "none: values are exact"
    assert info["forms"][0] == {"form_key": "=evil", "form_name": "Form =evil",
                                "table_name": "form_evil", "file": "form_evil.jsonl", "rows": 1}


def test_labels_as_headers(bundles: Bundles) -> None:
    hostile_study(bundles)
    bundles.run("A", headers="labels")
    headers = check_all(bundles, "A")
    assert headers["json"]["form_VS"][11:] == [
        "Notes", "Long", "Record", "select", "=Smoker?", "=Smoker?__raw", "Systolic BP",
        "Systolic BP__raw", "Visit date", "Visit date__raw", "Visit time", "Visit time__raw",
        "weight [wt2]", "weight [wt2]__raw", "Weight [体重]", "Weight [体重]__raw",
    ]
    assert headers["csv"]["form_VS"][15:17] == ["'=Smoker?", "'=Smoker?__raw"]
    dictionary = read_json_zip(bundles.path("A", "json"))["dictionary.jsonl"]
    assert {(d["variable_name"], d["header"], d["raw_header"]) for d in dictionary} >= {
        ("体重", "Weight [体重]", "Weight [体重]__raw"), ("select", "select", None)}


def test_replay_gives_identical_files_and_touches_nothing(bundles: Bundles) -> None:
    hostile_study(bundles)
    bundles.run("A")
    before = bundles.files()
    stamps = {p: p.stat().st_mtime_ns for p in bundles.root.rglob("*") if p.is_file()}
    result = bundles.run("A")
    assert bundles.files() == before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    for event in result.get_asset_materialization_events():
        assert event.materialization.metadata["unchanged"].value is True


def test_a_changed_study_replaces_its_bundles_and_leaves_other_studies_alone(
    bundles: Bundles,
) -> None:
    hostile_study(bundles, "A")
    hostile_study(bundles, "B")
    bundles.run("A")
    bundles.run("B")
    b_files = {k: v for k, v in bundles.files().items() if k.startswith("B/")}
    old = read_json_zip(bundles.path("A", "json"))

    hostile_study(bundles, "A", extra="7")  # record 3's sysbp: 120 -> 1207
    result = bundles.run("A")
    new = read_json_zip(bundles.path("A", "json"))
    assert [o["sysbp__raw"] for o in old["form_VS.jsonl"]] == ["-5", "1e400", "120"]
    assert [o["sysbp__raw"] for o in new["form_VS.jsonl"]] == ["-5", "1e400", "1207"]
    check_all(bundles, "A")
    for event in result.get_asset_materialization_events():
        assert event.materialization.metadata["unchanged"].value is False
    assert {k: v for k, v in bundles.files().items() if k.startswith("B/")} == b_files

    # a form that lost all its records keeps an empty table; a removed form disappears
    variables = [variable(1, "VS", "sysbp", "NUMBER")]
    write_study(bundles.lake, "A", ["VS"], variables, [record(9, "VS", {"sysbp": "1"})])
    bundles.run("A")
    assert sorted(read_csv_zip(bundles.path("A", "csv"))) == [
        "dictionary.csv", "form_VS.csv", "forms.csv", "information.csv"]
    assert list(read_xlsx(bundles.path("A", "xlsx"))) == ["information", "dictionary", "VS"]
    check_all(bundles, "A")


@pytest.mark.parametrize(("fmt", "module", "seam"), [
    ("csv", csv_zip, "_after_member"), ("xlsx", xlsx, "_after_sheet"),
    ("json", jsonl, "_after_member")])
def test_a_failure_midway_keeps_the_previous_bundle_and_no_temporaries(
    bundles: Bundles, monkeypatch: pytest.MonkeyPatch, fmt: str, module, seam: str
) -> None:
    hostile_study(bundles)
    bundles.run("A")
    before = bundles.files()
    hostile_study(bundles, extra="7")  # a change the failed run would have written

    def explode(name: str) -> None:
        if "VS" in name:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, seam, explode)
    result = bundles.run("A", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events
                   if e.is_step_failure and e.step_key == "bundles_write")
    assert failure.step_failure_data.error.message.strip() == (
        f"dagster._core.definitions.events.Failure: file bundles: the {fmt} bundle of study A "
        f"failed ({bundles.path('A', fmt)}); the previous bundle is kept: "
        "OSError: [Errno 28] No space left on device")
    assert bundles.files()[f"A/{bundles.path('A', fmt).name}"] == before[
        f"A/{bundles.path('A', fmt).name}"]
    assert stale_temporaries(bundles.path("A", fmt)) == []
    assert sorted(os.listdir(bundles.root / "A")) == ["A.csv.zip", "A.jsonl.zip", "A.xlsx"]
    mats = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert fmt not in mats  # the partition of the failed format is not materialized


def test_an_unwritable_root_is_a_configuration_error_naming_destination_and_root(
    bundles: Bundles,
) -> None:
    hostile_study(bundles)
    blocker = bundles.root.parent / "not-a-folder"
    blocker.write_text("a file where the bundle root should be")
    result = bundles.run("A", raise_on_error=False, root=blocker)
    assert not result.success
    messages = [e.step_failure_data.error.message for e in result.all_events
                if e.is_step_failure]
    assert len(messages) == 1  # the one step that writes every bundle, at the first of them
    assert {m.strip() for m in messages} == {
        f"dagster._core.definitions.events.Failure: file bundles at {blocker}: cannot write the "
        "folder of study A: NotADirectoryError: Not a directory"}
