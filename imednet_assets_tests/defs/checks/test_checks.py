"""Asset checks on a real simulator, lake and DuckDB file: a clean run passes every check, each
kind of damage fails exactly its check, a moved source warns, and `imednet_all_job` runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from imednet_assets.defs.checks.definitions import asset_checks
from imednet_assets.defs.partitions import study_partitions
from imednet_assets_tests.defs.checks.conftest import (
    API_KEY,
    CHECK_KEYS,
    SECURITY_KEY,
    Study,
    check_key,
    evaluations,
    ingest,
    simulator,
)

REPO = Path(__file__).resolve().parents[3]
ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN

LAKE_API_ENTITIES = ("records", "subjects", "visits")
LAKE_API = {check_key(f"imednet/{e}", "lake_matches_api") for e in LAKE_API_ENTITIES}
EVERY_RECORD = check_key("duckdb/form_tables", "every_record_once")
EVERY_ANSWER = check_key("duckdb/records_long", "every_answer_once")
UNIQUE_SUBJECT = check_key("duckdb/subjects", "unique_subject_id")
VISIT_SUBJECTS = check_key("duckdb/visits", "visit_subjects_exist")
RECORD_SUBJECTS = check_key("duckdb/records_long", "record_subjects_exist")
PARENTS = check_key("duckdb/form_tables", "parent_records_exist")
WARN_CHECKS = {*LAKE_API, VISIT_SUBJECTS, RECORD_SUBJECTS, PARENTS}


def meta(evaluation: dg.AssetCheckEvaluation) -> dict[str, object]:
    return {k: v.value for k, v in evaluation.metadata.items()}


def test_checks_are_partitioned_by_study_and_non_blocking() -> None:
    assert len(CHECK_KEYS) == 12
    for checks in asset_checks:
        for spec in checks.check_specs:
            assert spec.partitions_def == study_partitions
            assert spec.blocking is False


def test_clean_run_passes_every_check(clean: tuple[Study, dg.ExecuteInProcessResult]) -> None:
    study, result = clean
    assert result.success
    found = evaluations(result)
    assert set(found) == CHECK_KEYS
    stats = study.sim.stats()[study.key]
    for key, evaluation in found.items():
        assert evaluation.passed, (key, evaluation.description)
        assert evaluation.partition == study.key
        assert evaluation.severity == (WARN if key in WARN_CHECKS else ERROR)
        assert evaluation.description.startswith(f"study {study.key}: ")
        assert meta(evaluation)["study"] == study.key
        shown = evaluation.description + json.dumps(meta(evaluation), default=str)
        assert API_KEY not in shown and SECURITY_KEY not in shown
    for entity in ("records", "subjects", "visits"):
        counts = meta(found[check_key(f"imednet/{entity}", "lake_matches_api")])
        assert counts["lake_rows"] == counts["api_rows"] == stats[entity]
    records = meta(found[EVERY_RECORD])
    assert records["lake_rows"] == records["duckdb_rows"] == stats["records"]
    assert sum(records["rows_by_table"].values()) == stats["records"]
    answers = meta(found[EVERY_ANSWER])
    assert answers["lake_answers"] == answers["duckdb_rows"] > stats["records"]
    assert meta(found[PARENTS])["child_records"] > 0  # the reference is really exercised


def test_checks_alone_on_untouched_duckdb_pass(
    clean: tuple[Study, dg.ExecuteInProcessResult],
) -> None:
    study, _ = clean
    found = study.run_checks()
    assert set(found) == CHECK_KEYS
    assert all(e.passed for e in found.values())


DUPLICATE = "INSERT INTO {t} SELECT * FROM {t} WHERE study_key = ? ORDER BY record_id LIMIT 1"
FIRST_SUBJECT = "(SELECT min(subject_id) FROM subjects WHERE study_key = ?)"
FIRST_CHILD = "(SELECT min(record_id) FROM form_AELOG WHERE study_key = ? AND parent_record_id > 0)"


@pytest.mark.parametrize(
    ("statement", "failing"),
    [
        pytest.param(DUPLICATE.format(t="form_VS"), {EVERY_RECORD}, id="form-table-duplicate"),
        pytest.param(DUPLICATE.format(t="records_long"), {EVERY_ANSWER}, id="long-duplicate"),
        pytest.param(
            "INSERT INTO subjects SELECT * FROM subjects WHERE study_key = ? "
            "ORDER BY subject_id LIMIT 1",
            {UNIQUE_SUBJECT},
            id="subject-duplicate",
        ),
        pytest.param(
            "DELETE FROM form_VS WHERE study_key = ? AND record_id = "
            "(SELECT min(record_id) FROM form_VS WHERE study_key = ?)",
            {EVERY_RECORD},
            id="form-row-lost",
        ),
        pytest.param(
            f"DELETE FROM subjects WHERE study_key = ? AND subject_id = {FIRST_SUBJECT}",
            {VISIT_SUBJECTS, RECORD_SUBJECTS},
            id="subject-lost",
        ),
        pytest.param(
            "UPDATE form_AELOG SET parent_record_id = 987654321 "
            f"WHERE study_key = ? AND record_id = {FIRST_CHILD}",
            {PARENTS},
            id="parent-missing",
        ),
    ],
)
def test_damage_fails_exactly_its_check(
    clean: tuple[Study, dg.ExecuteInProcessResult],
    tmp_path: Path,
    statement: str,
    failing: set[dg.AssetCheckKey],
) -> None:
    study, _ = clean
    found = study.run_checks(study.tamper(tmp_path, statement))
    assert set(found) == CHECK_KEYS
    assert {k for k, e in found.items() if not e.passed} == failing
    for key in failing:
        evaluation = found[key]
        assert evaluation.severity == (WARN if key in WARN_CHECKS else ERROR)
        assert evaluation.partition == study.key
        assert evaluation.description.startswith(f"study {study.key}: ")
        assert meta(evaluation)["study"] == study.key


def test_damage_details(clean: tuple[Study, dg.ExecuteInProcessResult], tmp_path: Path) -> None:
    """The failing checks' messages and metadata give the table, the counts and the keys."""
    study, first = clean
    before = evaluations(first)
    lake_records = meta(before[EVERY_RECORD])["lake_rows"]
    lake_answers = meta(before[EVERY_ANSWER])["lake_answers"]

    damaged = study.tamper(tmp_path, DUPLICATE.format(t="form_VS"))
    found = study.run_checks(damaged, {EVERY_RECORD})[EVERY_RECORD]
    m = meta(found)
    assert (m["lake_rows"], m["duckdb_rows"], m["duplicate_record_ids"]) == (
        lake_records, lake_records + 1, 1)
    assert m["table"] == "form_*"
    [dupe] = m["duplicates_sample"]
    assert (dupe["rows"], dupe["tables"]) == (2, ["form_VS", "form_VS"])
    assert found.description == (
        f"study {study.key}: form tables hold {lake_records + 1} rows, the lake {lake_records} "
        "records; 1 record_id(s) occur more than once")

    damaged = study.tamper(tmp_path, DUPLICATE.format(t="records_long"))
    found = study.run_checks(damaged, {EVERY_ANSWER})[EVERY_ANSWER]
    m = meta(found)
    assert (m["lake_answers"], m["duckdb_rows"], m["duplicate_keys"]) == (
        lake_answers, lake_answers + 1, 1)
    assert m["table"] == "records_long"
    assert m["duplicates_sample"][0]["rows"] == 2

    damaged = study.tamper(tmp_path, "INSERT INTO subjects SELECT * FROM subjects "
                                     "WHERE study_key = ? ORDER BY subject_id LIMIT 1")
    found = study.run_checks(damaged, {UNIQUE_SUBJECT})[UNIQUE_SUBJECT]
    m = meta(found)
    subjects = study.sim.stats()[study.key]["subjects"]
    assert (m["table"], m["rows"], m["distinct_keys"], m["duplicate_rows"], m["null_keys"]) == (
        "subjects", subjects + 1, subjects, 1, 0)
    assert m["duplicates_sample"][0]["rows"] == 2
    assert found.description == f"study {study.key}: subjects 1 extra row(s) repeat a subject_id"


def test_source_moved_after_ingest_warns(tmp_path: Path) -> None:
    with simulator(seed=12) as sim:
        study, result = ingest(tmp_path, sim)
        assert all(e.passed for e in evaluations(result).values())
        before = sim.stats()[study.key]
        sim.advance(study_key=study.key, add=3)
        found = study.run_checks(keys=LAKE_API)
    records = found[check_key("imednet/records", "lake_matches_api")]
    assert records.passed is False
    assert records.severity == WARN
    assert records.partition == study.key
    m = meta(records)
    assert (m["lake_rows"], m["api_rows"]) == (before["records"], before["records"] + 3)
    assert records.description == (
        f"study {study.key}: lake records holds {before['records']} rows, differs by -3 from the "
        f"API's {before['records'] + 3}")
    for entity in ("subjects", "visits"):
        assert found[check_key(f"imednet/{entity}", "lake_matches_api")].passed


ALL_JOB_SCRIPT = """
import json, os
import dagster as dg
from imednet_assets.simulator import SimulatorConfig, SimulatorServer

with SimulatorServer(SimulatorConfig(seed=5, studies=1, subjects=3)) as sim:
    os.environ.update(IMEDNET_BASE_URL=sim.base_url, IMEDNET_API_KEY="k1",
                      IMEDNET_SECURITY_KEY="k2")
    from imednet_assets.definitions import defs

    [study] = sorted(sim.stats())
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [study])
    result = defs.resolve_job_def("imednet_all_job").execute_in_process(
        partition_key=study, instance=instance)
    print(json.dumps({"study": study, "success": result.success, "checks": [
        [e.asset_key.to_user_string(), e.check_name, e.passed, e.partition]
        for e in result.get_asset_check_evaluations()]}))
"""


def test_code_location_all_job_runs_the_checks(tmp_path: Path) -> None:
    """The deployed `defs` (env-configured resources): the job evaluates every check."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMEDNET", "DAGSTER"))}
    env.update(DAGSTER_HOME=str(tmp_path), IMEDNET_ASSETS_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-c", ALL_JOB_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["success"]
    ran = {check_key(asset, name): (passed, partition) for asset, name, passed, partition in
           out["checks"]}
    # and the always-on ODM file's own record check
    expected = CHECK_KEYS | {check_key("odm/snapshot", "every_record_once")}
    assert ran == {key: (True, out["study"]) for key in expected}
