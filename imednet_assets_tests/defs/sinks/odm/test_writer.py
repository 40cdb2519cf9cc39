"""The ODM writers on a small hostile study: both files validate against the ODM 1.3.2 schema,
the snapshot holds every live record's current values exactly, the transactional file one
AuditRecord per revision, and the same lake gives the same bytes."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from imednet_assets.defs.lake.slice import study_dir
from imednet_assets.defs.sinks.odm.source import OdmSource
from imednet_assets.defs.sinks.odm.writer import OdmKind, OdmStats, write_odm
from imednet_assets_tests.defs.sinks.duckdb.conftest import write_study
from imednet_assets_tests.defs.sinks.odm.conftest import (
    CONTROL,
    NEWEST,
    check_references,
    expected_values,
    form_variables,
    hostile_study,
    lake_records,
    read_odm,
    slices,
    validate,
    xml_ok,
)

KINDS: tuple[OdmKind, ...] = ("snapshot", "transactional")
STUDY = 'H<&>"\'.%2E'  # a hostile study key too


def _write(lake: Path, out: Path, kind: OdmKind, study: str = STUDY) -> OdmStats:
    with OdmSource(study, slices(lake, study), batch_rows=2) as source:  # several batches
        return write_odm(out, source, kind)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    hostile_study(tmp_path / "lake", STUDY)
    return tmp_path / "lake"


@pytest.mark.parametrize("kind", KINDS)
def test_both_files_validate_against_the_odm_1_3_2_schema(lake: Path, tmp_path: Path,
                                                          kind: OdmKind) -> None:
    path = tmp_path / f"{kind}.xml"
    stats = _write(lake, path, kind)
    validate(path)
    check_references(path)
    odm = read_odm(path)
    assert odm.root["FileType"] == kind.capitalize()
    assert odm.root["ODMVersion"] == "1.3.2"
    # from the data (the newest change), not the clock
    assert odm.root["CreationDateTime"] == NEWEST.isoformat() + "Z"
    assert stats.replaced_characters > 0  # the control characters were there to be replaced
    assert "\ufffd" in path.read_text(encoding="utf-8")


def test_the_snapshot_holds_every_live_record_with_its_current_values_exactly(
        lake: Path, tmp_path: Path) -> None:
    path = tmp_path / "snapshot.xml"
    stats = _write(lake, path, "snapshot")
    odm = read_odm(path)
    variables = form_variables(lake, STUDY)
    expected = {
        str(r["record_id"]): (xml_ok(r["subject_key"]), r["form_key"],
                              None if r["visit_id"] is None else str(r["visit_id"]),
                              expected_values(r["record_data"], variables[r["form_key"]]))
        for r in lake_records(lake, STUDY).values() if not r["deleted"]}
    got = {f.record_id: (f.subject_key, f.form_key, f.visit, f.values) for f in odm.forms}
    assert got == expected
    assert len(odm.forms) == len(got) == 4 == stats.forms  # the deleted record is left out
    assert all(f.transaction is None and f.audit is None for f in odm.forms)
    # the values that must survive byte for byte (tab, CR LF, quotes, markup, 20,000 é)
    values = got["1"][3]
    assert values['odd "name" \'<&>.%2E'] == "<b>&amp;</b> ]]> <!-- x --> <?pi?>"
    assert values["a%2Eb"] == " lead\ttab\nnew\r\nline  trail "
    assert (values["vsdt"], values["vstm"]) == ("2024-04-09", "2024-04-09T16:40:03")  # ISO
    assert values["ctl\ufffdname"] == xml_ok(CONTROL) == "ctl" + "\ufffd" * 7 + " end"
    assert got["4"][3]["big"].endswith("<&>") and len(got["4"][3]["big"]) == 20_003
    assert got["2"][3] == {"sysbp": "ND", "smoker": "", 'odd "name" \'<&>.%2E':
                           "体重 😀 ﷽ \u202eRTL\u2028"}  # null: no ItemData; unknown key: none
    assert stats.skipped_values > 0


def test_the_transactional_file_has_one_audit_record_per_revision(lake: Path,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "transactional.xml"
    stats = _write(lake, path, "transactional")
    odm = read_odm(path)
    revisions = pq.read_table(study_dir(lake, "record_revisions", STUDY)).to_pylist()
    audited = [f for f in odm.forms if f.audit is not None]
    assert len(audited) == stats.audit_records == len(revisions) == 8
    assert sorted(f.audit["source"] for f in audited) == sorted(  # type: ignore[index]
        f"recordRevisionId {r['record_revision_id']}" for r in revisions)

    by_record: dict[str, list] = defaultdict(list)
    for f in odm.forms:
        by_record[f.record_id].append(f)
    # Insert first, Update after, Remove for a deletion; a record without revisions: Upsert
    assert {r: [f.transaction for f in fs] for r, fs in by_record.items()} == {
        "1": ["Insert", "Update", "Update"], "2": ["Insert"], "3": ["Insert", "Remove"],
        "4": ["Insert"], "5": ["Upsert"], "99": ["Insert"]}
    # the current values ride on the last revision that is not a deletion, once per record
    variables = form_variables(lake, STUDY)
    records = lake_records(lake, STUDY)
    for record_id, forms in by_record.items():
        carriers = [f for f in forms if f.values is not None]
        record = records.get(int(record_id))
        if record is None:  # a revision of a record the lake no longer holds: no values
            assert carriers == []
            continue
        live = [f for f in forms if f.transaction != "Remove"]
        assert carriers == [live[-1]]
        assert carriers[0].values == expected_values(record["record_data"],
                                                     variables[record["form_key"]])
    # who, where, when, why
    first = by_record["1"]
    users = odm.users
    assert [users[f.audit["user"]] for f in first] == ['jane <&> "doe"'] * 2 + ["bob"]
    assert [f.audit["reason"] for f in first] == [
        None, "typo: <b> & \ufffd fixed", "status to complete"]
    assert [f.audit["when"] for f in first] == [
        "2024-04-01T09:00:00Z", "2024-04-01T10:00:00Z", "2024-04-01T11:00:00Z"]
    assert odm.locations[first[0].audit["location"]] == "Rochester"
    assert users[by_record["3"][0].audit["user"]] is None  # no user: a User without a login
    # a revision without a site: its record's; without either: a Location for none
    assert odm.locations[by_record["4"][0].audit["location"]] == "Rochester"
    assert odm.locations[by_record["99"][0].audit["location"]] == "no site"
    assert by_record["99"][0].subject_key == "S-9" and by_record["99"][0].form_key == "VS"


def test_the_same_lake_gives_the_same_bytes(lake: Path, tmp_path: Path) -> None:
    for kind in KINDS:
        first, second = tmp_path / f"{kind}-1.xml", tmp_path / f"{kind}-2.xml"
        _write(lake, first, kind)
        _write(lake, second, kind)
        assert first.read_bytes() == second.read_bytes()


def test_an_empty_study_still_validates(tmp_path: Path) -> None:
    write_study(tmp_path / "lake", "E", ["F"], [], [])
    for kind in KINDS:
        path = tmp_path / f"{kind}.xml"
        stats = _write(tmp_path / "lake", path, kind, study="E")
        validate(path)
        check_references(path)
        # write_study's one revision names record 1, which the lake does not hold
        assert stats.forms == (0 if kind == "snapshot" else 1)
    odm = read_odm(tmp_path / "transactional.xml")
    assert [(f.form_key, f.record_id, f.transaction) for f in odm.forms] == [
        ("(no form)", "1", "Insert")]
