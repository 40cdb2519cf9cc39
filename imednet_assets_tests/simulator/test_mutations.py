"""Data changes: /_sim/advance, POST records and job polling, visible through the API."""

from __future__ import annotations

import httpx
import pytest

from imednet_assets.simulator import SimulatorConfig, SimulatorServer
from imednet_assets_tests.simulator.conftest import KEYS, STUDY, fetch_all

BASE = f"/api/v1/edc/studies/{STUDY}"


@pytest.fixture()
def msim():
    with SimulatorServer(SimulatorConfig(seed=5, studies=2, subjects=3)) as s:
        yield s


@pytest.fixture()
def mclient(msim):
    with httpx.Client(base_url=msim.base_url, headers=KEYS) as c:
        yield c


def test_advance_modify_add_delete_purge(msim, mclient):
    before = {r["recordId"]: r for r in fetch_all(mclient, f"{BASE}/records")}
    revs_before = len(fetch_all(mclient, f"{BASE}/recordRevisions"))
    watermark = max(r["dateModified"] for r in before.values())
    out = msim.advance(study_key=STUDY, modify=4, add=3, delete=2, purge=5)
    after = {r["recordId"]: r for r in fetch_all(mclient, f"{BASE}/records")}
    assert len(after) == len(before) + 3 - 5
    assert not set(out["purged"]) & set(after)
    assert set(out["added"]) <= set(after) and not set(out["added"]) & set(before)
    for rid in out["deleted"]:
        assert after[rid]["deleted"] is True
    for rid in set(out["modified"]) - set(out["purged"]):
        assert after[rid]["recordData"] != before[rid]["recordData"]
        assert after[rid]["dateModified"] > before[rid]["dateModified"]
    iso = watermark.replace(" ", "T") + "Z"
    changed = fetch_all(mclient, f"{BASE}/records", filter=f"dateModified>{iso}")
    live_changed = (set(out["modified"]) | set(out["added"]) | set(out["deleted"])) - set(
        out["purged"])
    assert {r["recordId"] for r in changed} == live_changed
    revs = fetch_all(mclient, f"{BASE}/recordRevisions")
    assert len(revs) == revs_before + 4 + 3 + 2
    stats = msim.stats()[STUDY]
    assert stats["records"] == len(after) and stats["record_revisions"] == len(revs)


def test_clock_only_moves_forward(msim, mclient):
    msim.advance(study_key=STUDY, modify=1)
    first = max(r["dateModified"] for r in fetch_all(mclient, f"{BASE}/records"))
    msim.advance(study_key=STUDY, modify=1)
    second = max(r["dateModified"] for r in fetch_all(mclient, f"{BASE}/records"))
    assert second > first


def test_delete_subjects(msim, mclient):
    before = sum(s["deleted"] for s in fetch_all(mclient, f"{BASE}/subjects"))
    out = msim.advance(study_key=STUDY, delete_subjects=1)
    subjects = fetch_all(mclient, f"{BASE}/subjects")
    assert sum(s["deleted"] for s in subjects) == before + 1
    assert [s["deleted"] for s in subjects if s["subjectKey"] == out["deleted_subjects"][0]] == [
        True]


def test_advance_unknown_study_404(msim):
    r = httpx.post(f"{msim.base_url}/_sim/advance", json={"study_key": "NOPE", "modify": 1})
    assert r.status_code == 404


def test_post_records_update_create_and_job(msim, mclient):
    subject = fetch_all(mclient, f"{BASE}/subjects")[0]["subjectKey"]
    target = fetch_all(mclient, f"{BASE}/records", filter="formKey==VS")[0]
    n_before = len(fetch_all(mclient, f"{BASE}/records"))
    body = [
        {"formKey": "VS", "recordId": target["recordId"], "data": {"weight": 77.5}},
        {"formKey": "AELOG", "subjectKey": subject, "data": {"aeterm": "headache",
                                                              "aeongo": True}},
        {"formKey": "DM", "siteName": "Rochester General", "data": {"age": 40}},
    ]
    r = mclient.post(f"{BASE}/records", json=body)
    assert r.status_code == 200
    job = r.json()
    assert set(job) == {"jobId", "batchId", "state"} and job["state"] == "created"
    states = [mclient.get(f"{BASE}/jobs/{job['batchId']}").json()["state"] for _ in range(3)]
    assert states == ["processing", "completed", "completed"]
    assert [j["batchId"] for j in mclient.get(f"{BASE}/jobs").json()] == [job["batchId"]]
    rows = {r["recordId"]: r for r in fetch_all(mclient, f"{BASE}/records")}
    assert len(rows) == n_before + 2
    updated = rows[target["recordId"]]
    assert updated["recordData"]["weight"] == "77.5"
    assert updated["dateModified"] > target["dateModified"]
    new_ae = [r for r in rows.values() if r["recordData"].get("aeterm") == "headache"
              and r["subjectKey"] == subject and r["recordId"] > target["recordId"]]
    assert new_ae and new_ae[-1]["recordData"]["aeongo"] == "true"
    revs = fetch_all(mclient, f"{BASE}/recordRevisions",
                     filter=f"recordId=={target['recordId']}")
    assert revs[-1]["dataRevision"] == len(revs) and revs[-1]["reasonForChange"] == "Data changed"


@pytest.mark.parametrize(("body", "attribute"), [
    ({"formKey": "VS"}, "body"),
    ([{"formKey": "NOPE", "data": {}}], "formKey"),
    ([{"formKey": "VS", "recordId": 1, "data": {}}], "recordId"),
    ([{"formKey": "VS", "subjectKey": "999-999", "data": {}}], "subjectKey"),
])
def test_post_records_validation(mclient, body, attribute):
    r = mclient.post(f"{BASE}/records", json=body)
    assert r.status_code == 400
    assert r.json()["metadata"]["error"]["field"]["attribute"] == attribute


def test_unknown_job_404(mclient):
    assert mclient.get(f"{BASE}/jobs/not-a-batch").status_code == 404


def test_advance_new_variable_is_answered_only_by_records_saved_after_it(msim, mclient):
    before = {r["recordId"]: r for r in fetch_all(mclient, f"{BASE}/records")}
    [added] = msim.advance(study_key=STUDY, new_variables=1)["new_variables"]
    form_key, name = added.split(".")
    variables = fetch_all(mclient, f"{BASE}/variables")
    [new] = [v for v in variables if v["variableName"] == name]
    assert (new["formKey"], new["variableType"]) == (form_key, "NUMBER")
    # records saved before the amendment do not answer it, nor change
    assert {r["recordId"]: r for r in fetch_all(mclient, f"{BASE}/records")} == before
    mine = sorted(rid for rid, r in before.items() if r["formKey"] == form_key)
    out = msim.advance(study_key=STUDY, modify=len(before))  # every live record saved again
    after = {r["recordId"]: r for r in fetch_all(mclient, f"{BASE}/records")}
    assert set(mine) & set(out["modified"])
    assert all(name in after[rid]["recordData"] for rid in set(mine) & set(out["modified"]))


def test_advance_without_tick_keeps_the_second(msim, mclient):
    first = msim.advance(study_key=STUDY, modify=1)["modified"]
    second = msim.advance(study_key=STUDY, modify=1, tick=False)["modified"]
    after = {r["recordId"]: r for r in fetch_all(mclient, f"{BASE}/records")}
    assert after[first[0]]["dateModified"] == after[second[0]]["dateModified"]


def test_the_audit_trail_never_changes_when_records_are_saved_again(msim, mclient):
    before = {r["recordRevisionId"]: r for r in fetch_all(mclient, f"{BASE}/recordRevisions")}
    out = msim.advance(study_key=STUDY, modify=20)
    after = {r["recordRevisionId"]: r for r in fetch_all(mclient, f"{BASE}/recordRevisions")}
    assert {k: after[k] for k in before} == before
    assert sorted({r["recordId"] for k, r in after.items() if k not in before}) == sorted(
        out["modified"])
