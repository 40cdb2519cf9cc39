"""Pseudonymised destinations against the real simulator: DuckDB files and the bundles (zip and
xlsx files read back), full and incremental refreshes, the key kept out of everything."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.ingest.assets import ingest_assets
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.modes import FULL, INCREMENTAL, mode_tags
from imednet_assets.defs.sinks.bundles.assets import bundle_assets
from imednet_assets.defs.sinks.bundles.definitions import bundle_resources
from imednet_assets.defs.sinks.bundles.io_manager import bundle_path
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets.defs.sinks.odm.assets import odm_assets
from imednet_assets.defs.sinks.odm.definitions import odm_resources
from imednet_assets.defs.sinks.pseudonymise import (
    StudyText,
    SubjectMentions,
    pseudonymise_batch,
)
from imednet_assets.defs.sinks.pseudonyms import (
    DATE_SHIFT_ENV,
    IDENTIFYING_ENV,
    PSEUDONYM_KEY_ENV,
    PSEUDONYMISE_ENV,
    Pseudonymiser,
    pseudonymiser,
)
from imednet_assets.defs.sinks.statistical.assets import statistical_assets
from imednet_assets.defs.sinks.statistical.definitions import statistical_resources
from imednet_assets.demo import QUIET_CONSOLE
from imednet_assets.simulator import SimulatorServer
from imednet_assets_tests.defs.ingest.conftest import imednet_env, imednet_resource, sim  # noqa: F401
from imednet_assets_tests.defs.sinks.bundles.conftest import read_json_zip
from imednet_assets_tests.defs.sinks.odm.conftest import check_references, validate
from imednet_assets_tests.defs.sinks.runs import materialize_study
from imednet_assets_tests.defs.sinks.sql.conftest import pg_sink, pg_url  # noqa: F401

pytestmark = pytest.mark.usefixtures("imednet_env")

KEY = "pseudonym-test-key-3b9f1c2e8a"
SHIFT = 20
IDENTIFYING = "BRTHDT,icdt"  # any case
STUDY_METADATA = {"studies", "sites", "intervals", "forms", "variables"}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PSEUDONYMISE_ENV, "duckdb, bundles")
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY)
    monkeypatch.setenv(DATE_SHIFT_ENV, str(SHIFT))
    monkeypatch.setenv(IDENTIFYING_ENV, IDENTIFYING)


def first_study(server: SimulatorServer) -> tuple[str, dg.DagsterInstance]:
    """The simulator's first study, registered as a partition of a new instance."""
    study = sorted(server.stats())[0]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [study])
    return study, instance


def refresh(root: Path, instance: dg.DagsterInstance, study: str, mode: str = FULL,
            raise_on_error: bool = True, files: bool = False,
            bundles: bool = True) -> dg.ExecuteInProcessResult:
    """Ingest, DuckDB and bundles for `study` under `root` (`files`: the statistical and ODM
    exports instead; `bundles=False`: DuckDB alone)."""
    destinations = (
        ([*statistical_assets, *odm_assets],
         {**statistical_resources(str(root / "bundles")), **odm_resources(str(root / "bundles"))})
        if files else
        ([*duckdb_assets, *(bundle_assets if bundles else [])],
         {**duckdb_resources(str(root / "sink.duckdb")),
          **bundle_resources(str(root / "bundles"))}))
    return dg.materialize(
        [*ingest_assets, *destinations[0]], partition_key=study,
        instance=instance, tags=mode_tags(mode), run_config=QUIET_CONSOLE,
        raise_on_error=raise_on_error,
        resources={"imednet": imednet_resource(),
                   "lake_io_manager": LakeIOManager(root=str(root / "lake")),
                   **destinations[1]})


def metadata(result: dg.ExecuteInProcessResult, destination: str) -> dict[str, dict[str, Any]]:
    return {m.asset_key.path[-1]: {k: v.value for k, v in m.metadata.items()}
            for m in (e.step_materialization_data.materialization
                      for e in result.get_asset_materialization_events())
            if m.asset_key.path[0] == destination}


def query(root: Path, text: str) -> list[tuple]:
    conn = duckdb.connect(str(root / "sink.duckdb"), read_only=True)
    try:
        return conn.execute(text).fetchall()
    finally:
        conn.close()


def duckdb_tables(root: Path, study: str) -> dict[str, list[tuple]]:
    names = [t for (t,) in query(root, "SELECT table_name FROM duckdb_tables() "
                                       "WHERE schema_name = 'main' ORDER BY 1")]
    return {t: query(root, f"SELECT * FROM \"{t}\" WHERE study_key = '{study}' ORDER BY ALL")
            for t in names}


def duckdb_text(root: Path) -> str:
    """Every cell of every table of the file (sync state included), as text."""
    tables = query(root, "SELECT schema_name, table_name FROM duckdb_tables()")
    return "\n".join(repr(query(root, f'SELECT * FROM "{s}"."{t}"')) for s, t in tables)


def bundle_text(root: Path) -> str:
    """Every file's bytes under the bundle root, zip members (xlsx parts included) unpacked, as
    text (latin-1: binary formats such as sav, dta and xpt keep text values as plain bytes)."""
    parts = []
    for path in sorted((root / "bundles").rglob("*")):
        if not path.is_file():
            continue
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                parts += [zf.read(n).decode("latin-1") for n in zf.namelist()]
        else:
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def bundle_forms(root: Path, study: str) -> dict[str, Any]:
    """The form tables of the study's JSON lines bundle (the files' build time left out)."""
    found = read_json_zip(bundle_path(root / "bundles", study, "json"))
    return {name: rows for name, rows in found.items() if name.startswith("form_")}


def bundle_subject_keys(root: Path, study: str) -> set[str]:
    return {row["subject_key"] for rows in bundle_forms(root, study).values() for row in rows}


def bundle_files(root: Path) -> dict[str, bytes]:
    """Every file under `root/bundles` by relative path."""
    folder = root / "bundles"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def lake_columns(root: Path, entity: str, study: str, columns: list[str]) -> pa.Table:
    return LakeSlice.read(root / "lake", entity, study, SCHEMAS[entity]).columns(columns)


def originals(root: Path, study: str) -> tuple[set[str], set[str], set[int]]:
    """The study's subject keys, OIDs and ids as the lake holds them."""
    t = lake_columns(root, "subjects", study, ["subject_key", "subject_oid", "subject_id"])
    return (set(t.column("subject_key").to_pylist()), set(t.column("subject_oid").to_pylist()),
            set(t.column("subject_id").to_pylist()))


def test_same_pseudonyms_in_duckdb_and_bundles_across_full_and_incremental_refreshes(
        sim, tmp_path, settings):  # noqa: F811
    study, instance = first_study(sim)
    kept = tmp_path / "kept"
    refresh(kept, instance, study)
    p = pseudonymiser("duckdb")
    assert p is not None
    keys, _, _ = originals(kept, study)
    expected = {p.subject_key(study, k) for k in keys}
    in_duckdb = {k for (k,) in query(kept, "SELECT subject_key FROM subjects")}
    assert in_duckdb == expected
    # the records' subjects: the same pseudonyms in the DuckDB tables and in the files
    in_records = {k for (k,) in query(kept, "SELECT DISTINCT subject_key FROM records_long")}
    assert in_records and in_records <= expected
    assert bundle_subject_keys(kept, study) == in_records

    # an incremental refresh applies the changes in pseudonyms and equals a fresh full one
    sim.advance(study_key=study, modify=2, add=1, delete=1, delete_subjects=1)
    meta = metadata(refresh(kept, instance, study, INCREMENTAL), "duckdb")
    assert meta["form_tables"]["mode"] == "apply"
    assert meta["subjects"]["mode"] == "apply"
    fresh = tmp_path / "fresh"
    refresh(fresh, instance, study)
    assert duckdb_tables(kept, study) == duckdb_tables(fresh, study)
    assert bundle_forms(kept, study) == bundle_forms(fresh, study)
    # subjects that were there keep their pseudonyms; new ones get theirs from the same key
    still = {k for (k,) in query(kept, "SELECT subject_key FROM subjects")}
    keys_now, _, _ = originals(kept, study)
    assert still == {p.subject_key(study, k) for k in keys_now}
    assert still & in_duckdb == {p.subject_key(study, k) for k in keys_now & keys}


def test_postgresql_and_duckdb_hold_the_same_pseudonyms_after_full_and_incremental_refreshes(
        sim, tmp_path, settings, monkeypatch, pg_sink):  # noqa: F811
    monkeypatch.setenv(PSEUDONYMISE_ENV, "duckdb,sql")
    study, instance = first_study(sim)
    columns = "subject_key, subject_id, subject_oid, enrollment_start_date"

    def same_in_both() -> None:
        pg_sink.run(study)  # reads the lake the DuckDB refresh wrote (tmp_path/lake)
        assert sorted(pg_sink.query(f"SELECT {columns} FROM {pg_sink.ref('subjects')}")) == \
            sorted(query(tmp_path, f"SELECT {columns} FROM subjects"))
        long = "SELECT record_id, subject_key, variable_name, value FROM "
        assert sorted(pg_sink.query(long + pg_sink.ref("records_long"))) == \
            sorted(query(tmp_path, long + "records_long"))
        keys, oids, _ = originals(tmp_path, study)
        text = repr(pg_sink.snapshot())
        assert "PSN-" in text and not [k for k in keys | oids if k in text]

    refresh(tmp_path, instance, study)
    same_in_both()
    sim.advance(study_key=study, modify=2, add=1, delete=1, delete_subjects=1)
    refresh(tmp_path, instance, study, INCREMENTAL)
    same_in_both()


def test_no_original_subject_key_oid_or_id_anywhere_in_a_pseudonymised_destination(
        sim, tmp_path, settings):  # noqa: F811
    study, instance = first_study(sim)
    refresh(tmp_path, instance, study)
    keys, oids, ids = originals(tmp_path, study)
    assert keys and oids and ids
    text = duckdb_text(tmp_path) + bundle_text(tmp_path)
    assert "PSN-" in text
    for original in sorted(keys | oids):
        assert original not in text, original
    for table, column in [("subjects", "subject_id"), ("visits", "subject_id")]:
        held = {v for (v,) in query(tmp_path, f"SELECT {column} FROM {table}")}
        assert held and not held & ids
    assert KEY not in text


def test_no_original_subject_key_or_oid_in_the_statistical_and_odm_files(
        sim, tmp_path, settings, monkeypatch):  # noqa: F811
    monkeypatch.setenv(PSEUDONYMISE_ENV, "statistical,odm")
    study, instance = first_study(sim)
    result = refresh(tmp_path, instance, study, files=True)
    keys, oids, _ = originals(tmp_path, study)
    names = {p.name.split(".", 1)[1] for p in (tmp_path / "bundles").rglob("*") if p.is_file()}
    assert {"xpt.zip", "sav.zip", "dta.zip", "odm.xml", "transactional.odm.xml"} <= names
    text = bundle_text(tmp_path)
    p = pseudonymiser("odm")
    assert p is not None and p.subject_key(study, sorted(keys)[0]) in text
    for original in sorted(keys | oids):
        assert original not in text, original
    assert KEY not in text
    for destination in ("statistical", "odm"):
        assert all(m["pseudonymised"] for m in metadata(result, destination).values())
    for odm in (tmp_path / "bundles").rglob("*.xml"):  # still valid ODM, every OID defined
        validate(odm)
        check_references(odm)


def test_pseudonymised_files_from_the_same_lake_are_the_same_bytes(
        sim, tmp_path, settings, monkeypatch):  # noqa: F811
    monkeypatch.setenv(PSEUDONYMISE_ENV, "bundles,statistical,odm")
    study, instance = first_study(sim)
    refresh(tmp_path, instance, study, files=True)
    assets = [*bundle_assets, *statistical_assets, *odm_assets]
    for again in ("one", "two"):  # the same lake, exported twice more elsewhere
        folder = str(tmp_path / again / "bundles")
        materialize_study(instance, study, assets, {
            "lake_io_manager": LakeIOManager(root=str(tmp_path / "lake")),
            **bundle_resources(folder), **statistical_resources(folder),
            **odm_resources(folder)})
    one, two = bundle_files(tmp_path / "one"), bundle_files(tmp_path / "two")
    assert one == two
    first = bundle_files(tmp_path)
    assert first and {name: one[name] for name in first} == first


def test_every_date_of_a_subject_moves_by_one_offset_and_identifying_values_are_masked(
        sim, tmp_path, settings):  # noqa: F811
    study, instance = first_study(sim)
    refresh(tmp_path, instance, study)
    p = pseudonymiser("duckdb")
    assert p is not None
    lake = lake_columns(tmp_path, "visits", study,
                        ["visit_id", "subject_key", "visit_date", "due_date", "date_created"])
    held = {r[0]: r[1:] for r in query(
        tmp_path, "SELECT visit_id, subject_key, visit_date, due_date, date_created FROM visits")}
    shifts: dict[str, set[int]] = {}
    for row in lake.to_pylist():
        subject, visit, due, created = held[row["visit_id"]]
        assert subject == p.subject_key(study, row["subject_key"])
        shifts.setdefault(row["subject_key"], set()).update({
            (visit - row["visit_date"]).days, (due - row["due_date"]).days,
            (created - row["date_created"]).days})
    # record values that are dates (housekeeping and DATE variables) move by the same offset
    lake_records = lake_columns(tmp_path, "records", study,
                                ["record_id", "subject_key", "record_data"])
    long = {(r, v): value for r, v, value in query(
        tmp_path, "SELECT record_id, variable_name, value FROM records_long")}
    for row in lake_records.to_pylist():
        for name, value in row["record_data"]:
            if name in ("dateCreated", "vsdt", "exdt") and value:
                moved = long[row["record_id"], name]
                days = dt.date.fromisoformat(moved[:10]) - dt.date.fromisoformat(value[:10])
                shifts[row["subject_key"]].add(days.days)
    for subject, days in shifts.items():
        assert len(days) == 1, (subject, days)
        (offset,) = days
        assert offset == p.offset_days(study, subject)
        assert 0 < abs(offset) <= SHIFT
    assert len({d for s in shifts.values() for d in s}) > 1  # per subject, not one for all
    # identifying variables: gone from the long table, null in the form table
    assert not query(tmp_path, "SELECT * FROM records_long "
                               "WHERE lower(variable_name) IN ('brthdt', 'icdt')")
    assert query(tmp_path, 'SELECT count(*), count("brthdt") FROM "form_dm"')[0][1] == 0
    assert "brthdt" not in {n for (n,) in query(tmp_path, "SELECT variable_name FROM "
                                                          "records_long")}


def test_metadata_names_the_settings_never_the_key(sim, tmp_path, settings):  # noqa: F811
    study, instance = first_study(sim)
    result = refresh(tmp_path, instance, study)
    for destination in ("duckdb", "bundles"):
        for meta in metadata(result, destination).values():
            assert meta["pseudonymised"] is True
            assert meta["pseudonymisation"]["date_shift_days"] == [-SHIFT, SHIFT]
            assert meta["pseudonymisation"]["identifying_variables"] == ["brthdt", "icdt"]
    logs = "\n".join(repr(e) for e in instance.all_logs(result.run_id))
    assert "pseudonymised" in logs
    assert KEY not in logs
    assert KEY not in repr(pseudonymiser("duckdb"))


def test_a_missing_key_fails_the_step_naming_the_destination(
        sim, tmp_path, settings, monkeypatch):  # noqa: F811
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    study, instance = first_study(sim)
    result = refresh(tmp_path, instance, study, raise_on_error=False)
    assert not result.success
    failures = {e.step_key: e.step_failure_data.error.message
                for e in result.all_events if e.is_step_failure}
    message = ("duckdb: pseudonymisation is on (IMEDNET_ASSETS_PSEUDONYMISE) but "
               "IMEDNET_ASSETS_PSEUDONYM_KEY is not set; set the key or take duckdb out of "
               "IMEDNET_ASSETS_PSEUDONYMISE")
    assert any(message in m for k, m in failures.items() if k.startswith("duckdb")), failures


def test_a_destination_that_did_not_opt_in_holds_the_original_keys(
        sim, tmp_path, settings, monkeypatch):  # noqa: F811
    monkeypatch.setenv(PSEUDONYMISE_ENV, "duckdb")
    study, instance = first_study(sim)
    result = refresh(tmp_path, instance, study)
    keys, _, _ = originals(tmp_path, study)
    recorded = lake_columns(tmp_path, "records", study, ["subject_key"]).column(0).to_pylist()
    assert bundle_subject_keys(tmp_path, study) == set(recorded)
    assert "PSN-" not in bundle_text(tmp_path)
    assert all("pseudonymised" not in m for m in metadata(result, "bundles").values())
    assert {k for (k,) in query(tmp_path, "SELECT subject_key FROM subjects")}.isdisjoint(keys)


def test_turning_pseudonymisation_on_rewrites_what_the_destination_held(
        sim, tmp_path, settings, monkeypatch):  # noqa: F811
    monkeypatch.setenv(PSEUDONYMISE_ENV, "bundles")
    study, instance = first_study(sim)
    refresh(tmp_path, instance, study)
    keys, _, _ = originals(tmp_path, study)
    assert [k for k in keys if k in duckdb_text(tmp_path)]
    monkeypatch.setenv(PSEUDONYMISE_ENV, "bundles,duckdb")
    meta = metadata(refresh(tmp_path, instance, study, INCREMENTAL), "duckdb")
    # the study metadata holds no subject: it stays; every table with subjects is rewritten
    assert {a for a, m in meta.items() if m["mode"] != "rewrite"} == STUDY_METADATA
    assert not [k for k in keys if k in duckdb_text(tmp_path)]
    # and back: the originals return, nothing pseudonymised is left behind
    monkeypatch.setenv(PSEUDONYMISE_ENV, "bundles")
    meta = metadata(refresh(tmp_path, instance, study, INCREMENTAL), "duckdb")
    assert {a for a, m in meta.items() if m["mode"] != "rewrite"} == STUDY_METADATA
    assert "PSN-" not in duckdb_text(tmp_path)


def test_a_batch_keeps_its_schema_and_nulls(monkeypatch):
    monkeypatch.setenv(PSEUDONYMISE_ENV, "sql")
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, KEY)
    p = pseudonymiser("sql")
    assert p is not None and pseudonymiser("duckdb") is None
    schema = SCHEMAS["queries"]
    rows = [{"study_key": "S", "subject_key": "101-001", "subject_id": 7, "annotation_id": 1,
             "subject_oid": "SUBJ-7", "date_created": None, "extra": '{"x": 1}',
             "query_comments": [{"sequence": 1, "date": None}, None]},
            {"study_key": "S", "annotation_id": 2, "query_comments": None}]
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    out = pseudonymise_batch(batch, "S", p).to_pylist()
    assert out[0]["subject_key"] == p.subject_key("S", "101-001")
    assert out[0]["subject_id"] == p.subject_id("S", 7)
    assert out[0]["extra"] is None and out[0]["query_comments"][1] is None
    assert out[1]["subject_key"] is None and out[1]["query_comments"] is None


def test_offsets_cover_the_range_never_zero_and_pseudonyms_depend_on_key_and_study():
    env = {PSEUDONYMISE_ENV: "sql", PSEUDONYM_KEY_ENV: KEY, DATE_SHIFT_ENV: "3"}
    p = pseudonymiser("sql", env)
    other = pseudonymiser("sql", {**env, PSEUDONYM_KEY_ENV: KEY + "x"})
    assert p is not None and other is not None
    offsets = {p.offset_days("S", f"{i:03d}") for i in range(300)}
    assert offsets == {-3, -2, -1, 1, 2, 3}
    assert p.subject_key("S", "101-001") == p.subject_key("S", "101-001")
    assert p.subject_key("S", "101-001") != p.subject_key("T", "101-001")
    assert p.subject_key("S", "101-001") != other.subject_key("S", "101-001")
    assert 0 < p.subject_id("S", 7) < 2**53


@pytest.mark.parametrize(("env", "message"), [
    ({PSEUDONYM_KEY_ENV: "short"},
     "odm: IMEDNET_ASSETS_PSEUDONYM_KEY is shorter than 16 characters; use a long random secret"),
    ({PSEUDONYM_KEY_ENV: KEY, DATE_SHIFT_ENV: "-5"},
     "odm: IMEDNET_ASSETS_DATE_SHIFT_DAYS must be a whole number of days of at least 1, "
     "not '-5'"),
])
def test_bad_settings_fail_naming_the_destination(env: dict[str, str], message: str):
    with pytest.raises(dg.Failure) as failure:
        pseudonymiser("odm", {PSEUDONYMISE_ENV: "odm", **env})
    assert failure.value.description == message


def test_record_values_dates_shifted_odd_date_spellings_and_identifying_values_masked():
    env = {PSEUDONYMISE_ENV: "sql", PSEUDONYM_KEY_ENV: KEY, IDENTIFYING_ENV: "Initials"}
    p = pseudonymiser("sql", env)
    assert p is not None
    data = {"dateCreated": "2024-01-31 10:00:00", "vsdt": "2024-01-31", "odddt": "31/01/2024",
            "blankdt": "", "note": "31/01/2024", "INITIALS": "JD", "bad": "2024-02-30"}
    batch = pa.RecordBatch.from_pylist(
        [{"study_key": "S", "record_id": 1, "form_key": "VS", "subject_key": "101-001",
          "record_data": list(data.items())},
         {"study_key": "S", "record_id": 2, "form_key": "VS", "record_data": None}],
        schema=SCHEMAS["records"])
    dates = frozenset({"VS\x1fvsdt", "VS\x1fodddt", "VS\x1fblankdt", "AE\x1fnote"})
    out = pseudonymise_batch(batch.slice(0, 2), "S", p, StudyText(dates=dates)).to_pylist()
    days = p.offset_days("S", "101-001")
    moved = dt.date(2024, 1, 31) + dt.timedelta(days=days)
    assert dict(out[0]["record_data"]) == {
        "dateCreated": f"{moved} 10:00:00", "vsdt": str(moved), "odddt": None, "blankdt": "",
        "note": "31/01/2024",
        # the parser rolls an impossible day over (30 February = 1 March), then it moves
        "bad": str(dt.date(2024, 3, 1) + dt.timedelta(days=days))}
    assert out[1]["record_data"] is None


def _mentions(p: Pseudonymiser) -> SubjectMentions:
    return SubjectMentions.of("S", ["101-003", "101-004", "A 7", None], ["SUBJ-3", None], p)


def test_free_text_names_subjects_by_pseudonym_whole_words_only(monkeypatch):
    p = pseudonymiser("sql", {PSEUDONYMISE_ENV: "sql", PSEUDONYM_KEY_ENV: KEY})
    assert p is not None
    m = _mentions(p)
    key, oid = p.subject_key("S", "101-003"), p.subject_oid("S", "SUBJ-3")
    assert m.text("Subject 101-003 missed the visit; see (101-003).") == \
        f"Subject {key} missed the visit; see ({key})."
    assert m.text("101-003,101-004") == f"{key},{p.subject_key('S', '101-004')}"
    assert m.text("SUBJ-3: dose held") == f"{oid}: dose held"
    # not a mention: part of a longer word or number
    for text in ("101-0031", "X101-003", "2101-003", "SUBJ-33", "101-003x"):
        assert m.text(text) == text
    assert m.text("patient A 7 fell") == f"patient {p.subject_key('S', 'A 7')} fell"
    assert "101-003" not in repr(m) and "SUBJ-3" not in repr(m)


def test_free_text_columns_and_text_variables_are_scrubbed_other_values_kept(monkeypatch):
    p = pseudonymiser("sql", {PSEUDONYMISE_ENV: "sql", PSEUDONYM_KEY_ENV: KEY})
    assert p is not None
    key = p.subject_key("S", "101-003")
    text = StudyText(free_text=frozenset({"AE\x1faeterm"}), mentions=_mentions(p))
    queries = pa.RecordBatch.from_pylist(
        [{"study_key": "S", "subject_key": "101-004", "annotation_id": 1,
          "description": "Confirm 101-003's visit date", "variable": "101-003",
          "query_comments": [{"sequence": 1, "comment": "Same as subject 101-003."}, None]}],
        schema=SCHEMAS["queries"])
    out = pseudonymise_batch(queries, "S", p, text).to_pylist()[0]
    assert out["description"] == f"Confirm {key}'s visit date"
    assert out["query_comments"][0]["comment"] == f"Same as subject {key}."
    assert out["query_comments"][1] is None
    assert out["variable"] == "101-003"  # a variable name, not free text
    records = pa.RecordBatch.from_pylist(
        [{"study_key": "S", "record_id": 1, "form_key": "AE", "subject_key": "101-004",
          "record_data": [("aeterm", "fall, like 101-003"), ("aecode", "101-003")]}],
        schema=SCHEMAS["records"])
    out = pseudonymise_batch(records, "S", p, text).to_pylist()[0]
    assert dict(out["record_data"]) == {"aeterm": f"fall, like {key}", "aecode": "101-003"}
    revisions = pa.RecordBatch.from_pylist(
        [{"study_key": "S", "record_revision_id": 1, "subject_key": "101-004",
          "reason_for_change": "entered for 101-003 by mistake"}],
        schema=SCHEMAS["record_revisions"])
    out = pseudonymise_batch(revisions, "S", p, text).to_pylist()[0]
    assert out["reason_for_change"] == f"entered for {key} by mistake"
