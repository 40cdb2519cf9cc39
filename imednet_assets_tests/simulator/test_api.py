"""The API surface over real HTTP: envelope, paging, sort, filter grammar, auth and error bodies."""

from __future__ import annotations

import httpx
import pytest

from imednet_assets.simulator import SimulatorConfig, SimulatorServer
from imednet_assets_tests.simulator.conftest import KEYS, STUDY, fetch_all

BASE = f"/api/v1/edc/studies/{STUDY}"
ENDPOINTS = ["sites", "subjects", "intervals", "forms", "variables", "visits", "records",
             "recordRevisions", "queries", "codings", "users"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_list_endpoint_counts_match_stats(client, sim, endpoint):
    stats = sim.stats()[STUDY]
    key = {"recordRevisions": "record_revisions"}.get(endpoint, endpoint)
    body = client.get(f"{BASE}/{endpoint}").json()
    assert body["metadata"]["status"] == "OK"
    assert body["metadata"]["path"] == f"{BASE}/{endpoint}"
    assert body["metadata"]["error"] == {}
    assert body["pagination"]["totalElements"] == stats[key]
    assert len(fetch_all(client, f"{BASE}/{endpoint}")) == stats[key]


def test_studies_envelope_and_default_size(client):
    body = client.get("/api/v1/edc/studies").json()
    assert [s["studyKey"] for s in body["data"]] == ["CARDIO-01", "ONCO-02"]
    assert body["pagination"] == {"currentPage": 0, "size": 25, "totalPages": 1,
                                  "totalElements": 2,
                                  "sort": [{"property": "studyKey", "direction": "ASC"}]}


def test_paging_last_page_and_past_end(client, sim):
    total = sim.stats()[STUDY]["records"]
    last = (total - 1) // 100
    body = client.get(f"{BASE}/records", params={"page": last, "size": 100}).json()
    assert body["pagination"]["totalPages"] == last + 1
    assert len(body["data"]) == total - last * 100
    past = client.get(f"{BASE}/records", params={"page": last + 5, "size": 100}).json()
    assert past["data"] == [] and past["pagination"]["currentPage"] == last + 5
    assert past["pagination"]["totalElements"] == total


def test_pages_do_not_overlap(client, sim):
    ids = [r["recordId"] for r in fetch_all(client, f"{BASE}/records")]
    assert ids == sorted(ids) and len(set(ids)) == sim.stats()[STUDY]["records"]


def test_empty_result(client):
    body = client.get(f"{BASE}/records", params={"filter": "recordId<0"}).json()
    assert body["data"] == []
    assert body["pagination"]["totalPages"] == 0 and body["pagination"]["totalElements"] == 0


def test_size_above_max_is_clamped(client):
    body = client.get(f"{BASE}/records", params={"size": 501}).json()
    assert body["pagination"]["size"] == 500 and len(body["data"]) == 300


def test_size_above_max_rejected_when_configured():
    with SimulatorServer(SimulatorConfig(studies=1, subjects=1, oversize="reject")) as s:
        r = httpx.get(f"{s.base_url}{BASE}/records", params={"size": 501}, headers=KEYS)
    assert r.status_code == 400
    err = r.json()["metadata"]["error"]
    assert err["code"] == "1000" and err["field"] == {"attribute": "size", "value": "501"}


def test_bad_page_param(client):
    r = client.get(f"{BASE}/sites", params={"page": "XX"})
    assert r.status_code == 400
    meta = r.json()["metadata"]
    assert meta["status"] == "BAD_REQUEST"
    assert meta["error"]["field"] == {"attribute": "page", "value": "XX"}


def test_sort_desc_multi_and_echo(client):
    body = client.get(f"{BASE}/records",
                      params=[("sort", "formKey,asc"), ("sort", "recordId,DESC"),
                              ("size", 500)]).json()
    assert body["pagination"]["sort"] == [{"property": "formKey", "direction": "ASC"},
                                          {"property": "recordId", "direction": "DESC"}]
    keys = [(r["formKey"], -r["recordId"]) for r in body["data"]]
    assert keys == sorted(keys) and len(keys) == 300
    desc = client.get(f"{BASE}/subjects", params={"sort": "subjectId,desc"}).json()
    ids = [s["subjectId"] for s in desc["data"]]
    assert ids == sorted(ids, reverse=True)


def test_sort_unknown_property_400(client):
    r = client.get(f"{BASE}/sites", params={"sort": "nope,asc"})
    assert r.status_code == 400
    assert r.json()["metadata"]["error"]["field"]["attribute"] == "sort"


@pytest.mark.parametrize(("op", "fn"), [
    ("<", lambda a, b: a < b), ("<=", lambda a, b: a <= b), (">", lambda a, b: a > b),
    (">=", lambda a, b: a >= b), ("==", lambda a, b: a == b), ("!=", lambda a, b: a != b),
])
def test_every_operator_numeric(client, op, fn):
    rows = fetch_all(client, f"{BASE}/records")
    pivot = rows[len(rows) // 2]["recordId"]
    got = fetch_all(client, f"{BASE}/records", filter=f"recordId{op}{pivot}")
    assert [r["recordId"] for r in got] == [r["recordId"] for r in rows
                                            if fn(r["recordId"], pivot)]
    assert got


def test_and_or_spaces_and_words(client):
    rows = fetch_all(client, f"{BASE}/records")
    expect = [r for r in rows if r["formKey"] == "VS" and not r["deleted"]]
    for f in ("formKey==VS;deleted==false", "formKey == VS and deleted == False",
              'formKey=="VS";deleted==False'):
        assert [r["recordId"] for r in fetch_all(client, f"{BASE}/records", filter=f)] == \
            [r["recordId"] for r in expect], f
    either = [r for r in rows if r["formKey"] in ("AE", "CM")]
    for f in ("formKey==AE,formKey==CM", "formKey==AE or formKey==CM"):
        assert len(fetch_all(client, f"{BASE}/records", filter=f)) == len(either) > 0


def test_and_binds_tighter_than_or(client):
    rows = fetch_all(client, f"{BASE}/records")
    expect = [r for r in rows if r["formKey"] == "AE" or (r["formKey"] == "VS" and r["deleted"])]
    got = fetch_all(client, f"{BASE}/records", filter="formKey==AE,formKey==VS;deleted==true")
    assert len(got) == len(expect)


def test_quoted_values_with_spaces_and_escapes(client):
    sites = fetch_all(client, f"{BASE}/sites")
    name = sites[1]["siteName"]
    got = client.get(f"{BASE}/sites", params={"filter": f'siteName=="{name}"'}).json()["data"]
    assert [s["siteId"] for s in got] == [sites[1]["siteId"]]
    none = client.get(f"{BASE}/sites", params={"filter": r'siteName=="a\"b\\c"'}).json()
    assert none["pagination"]["totalElements"] == 0


def test_dates_across_formats(client):
    rows = fetch_all(client, f"{BASE}/records")
    pivot = sorted(r["dateModified"] for r in rows)[len(rows) // 2]  # "YYYY-MM-DD HH:MM:SS"
    expect = sum(r["dateModified"] >= pivot for r in rows)
    iso = pivot.replace(" ", "T")
    hh = int(pivot[11:13])
    shifted = f"{iso[:11]}{(hh + 2) % 24:02d}{iso[13:]}+02:00" if hh < 22 else None
    forms = [f"{iso}Z", f'"{iso}Z"', pivot and f'"{pivot}"'] + ([shifted] if shifted else [])
    for value in forms:
        got = client.get(f"{BASE}/records", params={"filter": f"dateModified>={value}"}).json()
        assert got["pagination"]["totalElements"] == expect, value


def test_visit_date_filter(client):
    visits = fetch_all(client, f"{BASE}/visits")
    pivot = sorted(v["visitDate"] for v in visits)[len(visits) // 3]
    got = fetch_all(client, f"{BASE}/visits", filter=f"visitDate<{pivot}")
    assert len(got) == sum(v["visitDate"] < pivot for v in visits) > 0


def test_study_key_on_sub_resources(client, sim):
    for ep in ("subjects", "records", "visits", "queries", "recordRevisions", "sites"):
        body = client.get(f"{BASE}/{ep}", params={"filter": f"studyKey=={STUDY}"}).json()
        total = client.get(f"{BASE}/{ep}").json()["pagination"]["totalElements"]
        assert body["pagination"]["totalElements"] == total > 0, ep
        other = client.get(f"{BASE}/{ep}", params={"filter": "studyKey==ONCO-02"}).json()
        assert other["pagination"]["totalElements"] == 0


@pytest.mark.parametrize("bad", ["formKey", "formKey=~AE", "nope==1", "recordId==abc",
                                 "dateCreated>2018", 'formKey=="AE', "deleted==maybe"])
def test_invalid_filter_400(client, bad):
    r = client.get(f"{BASE}/records", params={"filter": bad})
    assert r.status_code == 400
    meta = r.json()["metadata"]
    assert meta["status"] == "BAD_REQUEST"
    assert meta["error"]["code"] == "1000"
    assert meta["error"]["field"]["attribute"] == "filter"


def test_record_data_filter(client):
    rows = fetch_all(client, f"{BASE}/records", filter="formKey==VS")
    heavy = [r for r in rows if r["recordData"]["weight"] not in ("", "ND")
             and float(r["recordData"]["weight"]) > 80]
    got = fetch_all(client, f"{BASE}/records", filter="formKey==VS",
                    recordDataFilter="weight>80")
    assert [r["recordId"] for r in got] == [r["recordId"] for r in heavy] and heavy
    sitting = [r for r in rows if "sit" in r["recordData"]["vspos"].lower()]
    got = fetch_all(client, f"{BASE}/records", recordDataFilter="vspos=~SIT")
    assert len(got) == len(sitting) > 0
    both = fetch_all(client, f"{BASE}/records", recordDataFilter="vspos==Sitting;weight>80")
    assert len(both) == sum(r["recordData"]["vspos"] == "Sitting" for r in heavy)


def test_record_data_filter_mixed_connectors_400(client):
    r = client.get(f"{BASE}/records", params={"recordDataFilter": "aeser==Yes;aesev==Mild,x==1"})
    assert r.status_code == 400
    err = r.json()["metadata"]["error"]
    assert err["code"] == "1000" and err["field"]["attribute"] == "recordDataFilter"


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "k"}, {"x-api-key": "",
                                                              "x-imn-security-key": ""}])
def test_missing_auth_401(sim, headers):
    r = httpx.get(f"{sim.base_url}/api/v1/edc/studies", headers=headers)
    assert r.status_code == 401
    meta = r.json()["metadata"]
    assert meta["status"] == "UNAUTHORIZED"
    assert meta["error"] == {"code": "9001",
                             "description": "Insufficient permission to retrieve data"}


def test_wrong_keys_401_when_keys_configured():
    cfg = SimulatorConfig(studies=1, subjects=1, api_key="A", security_key="S")
    with SimulatorServer(cfg) as s:
        url = f"{s.base_url}/api/v1/edc/studies"
        bad = httpx.get(url, headers={"x-api-key": "A", "x-imn-security-key": "wrong"})
        good = httpx.get(url, headers={"x-api-key": "A", "x-imn-security-key": "S"})
    assert bad.status_code == 401 and bad.json()["metadata"]["error"]["code"] == "9001"
    assert good.status_code == 200


def test_unknown_study_403(client):
    r = client.get("/api/v1/edc/studies/NOPE-99/records")
    assert r.status_code == 403
    meta = r.json()["metadata"]
    assert meta["status"] == "FORBIDDEN" and meta["error"]["code"] == "9001"


def test_unknown_route_404(client):
    for path in (f"{BASE}/nothing", "/api/v2/whatever", f"{BASE}/records/1/x"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["metadata"]["status"] == "NOT_FOUND"


def test_users_role_dates_arrays_and_include_inactive(client):
    active = client.get(f"{BASE}/users").json()
    everyone = client.get(f"{BASE}/users", params={"includeInactive": "true"}).json()
    assert everyone["pagination"]["totalElements"] == active["pagination"]["totalElements"] + 1
    role = active["data"][0]["roles"][0]
    assert len(role["dateCreated"]) == 7 and all(isinstance(x, int) for x in role["dateCreated"])


def test_record_shape(client):
    rec = client.get(f"{BASE}/records").json()["data"][0]
    assert {"dateCreated", "dateModified", "unvnum"} <= set(rec["recordData"])
    assert all(isinstance(v, str) for v in rec["recordData"].values())
    children = fetch_all(client, f"{BASE}/records", filter="parentRecordId>0")
    parents = {r["recordId"]: r for r in fetch_all(client, f"{BASE}/records", filter="formKey==AE")}
    ae_lines = [c for c in children if c["formKey"] == "AELOG"]
    assert ae_lines and all(c["parentRecordId"] in parents for c in ae_lines)
