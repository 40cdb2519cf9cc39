"""Statistical export assets over a real lake folder, run through Dagster, read back with
pyreadstat and compared with the DuckDB tables cell by cell, through the mapping."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.ingest.assets import ENTITIES
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.bundles.content import extraction_time
from imednet_assets.defs.sinks.duckdb.naming import META_COLUMNS
from imednet_assets.defs.sinks.statistical.assets import statistical_assets
from imednet_assets.defs.sinks.statistical.definitions import statistical_resources
from imednet_assets.defs.sinks.statistical.formats import FORMATS
from imednet_assets.defs.sinks.statistical.names import shortened
from imednet_assets_tests.defs.sinks.duckdb.conftest import Sink as DuckdbSink
from imednet_assets_tests.defs.sinks.statistical.checks import check_format
from imednet_assets_tests.defs.sinks.statistical.conftest import (
    COLLIDER,
    HOSTILE,
    HUGE,
    LONG_LABEL,
    LONG_NAME,
    MEDIUM,
    SPACED,
    TAKEN,
    Exports,
    hostile_study,
)

ROWS = {"subjects": 1, "visits": 1, "form_Adverse_events": 1, "form_EMPTY": 0, "form_VS": 3}


def _variables(sheet: list[dict], table: str = "form_VS") -> dict[str, list[tuple]]:
    """original name -> [(short name, part, parts)] of one table's variables (meta columns and
    `__raw` twins left out: the meta `record_id` and the variable `record_id` share a name)."""
    out: dict[str, list[tuple]] = {}
    for r in sheet:
        if r["kind"] == "variable" and r["table"] == table and r["column"] not in META_COLUMNS \
                and not r["origname"].endswith("__raw"):
            out.setdefault(r["origname"], []).append((r["shortnm"], int(r["part"]),
                                                      int(r["parts"])))
    return out


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_cell_reads_back_equal_to_duckdb(exports: Exports, fmt: str) -> None:
    hostile_study(exports.lake)
    exports.run("A")
    found = check_format(exports, "A", fmt)
    names = found["names"]
    variables = _variables(found["sheet"])
    if fmt == "xpt":
        assert names == {"subjects": "SUBJECTS", "visits": "VISITS", "form_EMPTY": "EMPTY",
                         "form_VS": "VS", "form_Adverse_events": names["form_Adverse_events"],
                         "mapping": "MAPPING"}
        assert len(names["form_Adverse_events"]) == 8
        # the long name and the name it shortens to collide: the first in column order keeps it
        assert variables[COLLIDER] == [(TAKEN.upper(), 1, 1)]
        assert variables[TAKEN] == [(TAKEN.upper()[:6] + "_2", 1, 1)]
        assert variables["my var.1 $"] == [("MY_VAR_1", 1, 1)]
        # the variable `record_id` is column record_id_2 (the meta column has the name)
        assert variables["record_id"] == [(shortened("RECORD_ID_2", FORMATS["xpt"]), 1, 1)]
        # texts over 200 bytes are split: pieces of at most 200 bytes, in order
        assert [p for _, p, _ in variables[HOSTILE]] == [1, 2]
        assert len(variables[LONG_NAME]) == 205  # 41,000 bytes
        assert variables[LONG_NAME + "2"][0][2] == 3  # 405 bytes, cut before the blanks
    elif fmt == "sav":
        assert len(variables[LONG_NAME]) == 2  # 41,000 bytes: two pieces of at most 32,767
        assert variables[HOSTILE] == [("odd_name_select", 1, 1)]
    else:
        assert all(len(pieces) == 1 for pieces in variables.values())  # Stata: strL
        assert variables[LONG_NAME][0][0] != variables[LONG_NAME + "2"][0][0]
        assert all(len(s) <= 32 for pieces in variables.values() for s, _, _ in pieces)
    _, meta = found["datasets"][names["form_VS"]]
    smoker = variables["smoker"][0][0]
    assert meta.variable_value_labels.get(smoker) == (
        None if fmt == "xpt" else {1.0: "true", 0.0: "false"})
    labels = {r["origname"]: (r["label"], r["shortlbl"]) for r in found["sheet"]
              if r["table"] == "form_VS" and r["part"] == "1"}
    assert labels[HOSTILE][0] == LONG_LABEL
    assert labels[HOSTILE][1] == LONG_LABEL.encode()[: FORMATS[fmt].label_max].decode(
        errors="ignore")


def test_split_pieces_keep_every_character(exports: Exports) -> None:
    hostile_study(exports.lake)
    exports.run("A")
    datasets, sheet = exports.read("A", "xpt")
    frame, _ = datasets["VS"]
    pieces = _variables(sheet)
    medium = [frame[s][0] for s, _, _ in pieces[HOSTILE]]
    assert "".join(medium) == MEDIUM and all(len(p.encode()) <= 200 for p in medium)
    spaced = [frame[s][0] for s, _, _ in pieces[LONG_NAME + "2"]]
    assert "".join(spaced) == SPACED and not spaced[0].endswith(" ")  # the cut before blanks
    huge = [frame[s][0] for s, _, _ in pieces[LONG_NAME]]
    assert "".join(huge) == HUGE


def test_materialization_reports_rows_datasets_and_path(exports: Exports) -> None:
    hostile_study(exports.lake)
    result = exports.run("A")
    meta = {e.asset_key.path[-1]: e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert sorted(meta) == ["dta", "sav", "xpt"]
    for fmt, values in meta.items():
        assert values["dagster/row_count"].value == 6
        assert values["rows_by_table"].value == ROWS
        assert values["path"].value == str(exports.path("A", fmt))
        assert values["unchanged"].value is False
        assert sorted(values["datasets"].value) == sorted(ROWS)
        assert zipfile.ZipFile(exports.path("A", fmt)).namelist()[-1] == "mapping.csv"
    assert meta["xpt"]["split_values"].value == 3
    assert meta["sav"]["split_values"].value == 1
    assert meta["dta"]["split_values"].value == 0
    # 1e300 and 1e-300: beyond SAS transport's IBM floats (ReadStat would write inf and 0)
    assert meta["xpt"]["numbers_out_of_range"].value == 2
    assert meta["sav"]["numbers_out_of_range"].value == meta["dta"][
        "numbers_out_of_range"].value == 0


def test_replay_gives_identical_files_and_headers_carry_the_lake_time(exports: Exports) -> None:
    hostile_study(exports.lake)
    exports.run("A")
    before = exports.files()
    stamps = {p: p.stat().st_mtime_ns for p in exports.root.rglob("*") if p.is_file()}
    result = exports.run("A")
    assert exports.files() == before
    assert sorted(before) == ["A/A.dta.zip", "A/A.sav.zip", "A/A.xpt.zip"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    for event in result.get_asset_materialization_events():
        assert event.materialization.metadata["unchanged"].value is True
    when = extraction_time(exports.slices("A"))
    for fmt in FORMATS:
        datasets, _ = exports.read("A", fmt)
        created = datasets["VS"][1].creation_time
        precision = dt.timedelta(minutes=1) if fmt == "dta" else dt.timedelta(seconds=1)
        assert dt.timedelta(0) <= when - created < precision, fmt


def test_a_value_that_cannot_be_split_is_refused_naming_study_form_record_variable(
    exports: Exports,
) -> None:
    hostile_study(exports.lake)
    exports.run("A")
    before = exports.files()
    hostile_study(exports.lake, refuse=True)
    result = exports.run("A", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "study A, form VS, variable " + LONG_NAME + ", record 2" in message
    assert "SAS transport" in message and "blanks" in message
    after = exports.files()
    assert after["A/A.xpt.zip"] == before["A/A.xpt.zip"]  # the previous export is kept
    # SPSS and Stata were written first, with the new value (no limit refuses it there)
    assert after["A/A.sav.zip"] != before["A/A.sav.zip"]
    assert after["A/A.dta.zip"] != before["A/A.dta.zip"]
    assert sorted(after) == sorted(before)  # no temporaries left
    for fmt in ("sav", "dta"):
        check_format(exports, "A", fmt)


def test_a_text_with_a_nul_character_is_refused_naming_study_form_record_variable(
    exports: Exports,
) -> None:
    hostile_study(exports.lake, nul=True)
    assert exports.duckdb_tables("A")["form_Adverse_events"].column("ae_term")[0].as_py() == (
        "Head\x00ache")  # DuckDB holds it; ReadStat would write "Head"
    result = exports.run("A", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "study A, form Adverse events $., variable ae term, record 4: the text holds a NUL" \
        in message
    assert exports.files() == {}


def _comparable(row: tuple) -> tuple:
    return tuple("NaN" if isinstance(v, float) and v != v else v for v in row)


def test_the_tables_compared_with_are_the_duckdb_sinks_own(exports: Exports,
                                                          tmp_path: Path) -> None:
    """The exports are checked against `StudyTables`; here those equal the DuckDB file's form
    tables for the hostile study, cell for cell."""
    hostile_study(exports.lake)
    sink = DuckdbSink(tmp_path)  # the same lake folder
    assert sink.lake == exports.lake
    sink.run("A")
    for name, table in exports.duckdb_tables("A").items():
        if not name.startswith("form_"):
            continue
        ours = sorted((_comparable(tuple(r.values())) for r in table.to_pylist()), key=repr)
        duck = sorted((_comparable(r) for r in sink.query(f'SELECT * FROM "{name}"')), key=repr)
        assert ours == duck, name


def test_one_run_over_two_studies_writes_what_one_run_per_study_writes(
    exports: Exports, tmp_path: Path,
) -> None:
    hostile_study(exports.lake, "A")
    hostile_study(exports.lake, "B/2")  # a key that must be encoded in the folder name
    exports.run("A")
    exports.run("B/2")
    per_study = exports.files()
    root = tmp_path / "one-run"
    upstream = [dg.AssetSpec(["imednet", e], partitions_def=study_partitions) for e in ENTITIES]
    job = dg.Definitions(
        assets=[*upstream, *statistical_assets],
        resources={"lake_io_manager": LakeIOManager(root=str(exports.lake)),
                   **statistical_resources(str(root))},
    ).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=exports.instance, tags={
        "dagster/asset_partition_range_start": "A", "dagster/asset_partition_range_end": "B/2"})
    assert result.success
    done = {(e.asset_key.path[-1], e.partition) for e in result.get_asset_materialization_events()}
    assert done == {(f, s) for f in FORMATS for s in ("A", "B/2")}
    assert {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()} == per_study
