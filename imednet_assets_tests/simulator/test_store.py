"""Determinism, hostile data, scale, and the subprocess runner."""

from __future__ import annotations

import httpx
import psutil

from imednet_assets.simulator import SimulatorConfig, SimulatorServer, build_store
from imednet_assets.simulator.generator import ts as gen_ts
from imednet_assets_tests.simulator.conftest import KEYS, fetch_all


def test_same_seed_same_bytes():
    cfg = SimulatorConfig(seed=42, studies=2, subjects=4, hostile=True)
    bodies = []
    for _ in range(2):
        with SimulatorServer(cfg) as s, httpx.Client(base_url=s.base_url, headers=KEYS) as c:
            bodies.append([c.get(f"/api/v1/edc/studies/ONCO-02/{ep}",
                                 params={"page": 1, "size": 37}).content
                           for ep in ("records", "subjects", "visits", "recordRevisions",
                                      "queries", "codings", "users", "variables")])
    assert bodies[0] == bodies[1]
    other = build_store(SimulatorConfig(seed=43, studies=2, subjects=4))
    mine = build_store(SimulatorConfig(seed=42, studies=2, subjects=4))
    assert other.list_page("records", "ONCO-02")[1] != mine.list_page("records", "ONCO-02")[1]


def test_hostile_study():
    cfg = SimulatorConfig(seed=1, studies=1, subjects=10, hostile=True)
    with SimulatorServer(cfg) as s, httpx.Client(base_url=s.base_url, headers=KEYS) as c:
        base = "/api/v1/edc/studies/CARDIO-01"
        names = {v["variableName"] for v in fetch_all(c, f"{base}/variables")}
        assert {"patient weight", "cost$usd", "lab.value", 'say "hi"', "it's", "select",
                "from", "order", "température", "体重", "dateCreated"} <= names
        stats = s.stats()["CARDIO-01"]
        assert stats["records_by_form"]["EMPTY"] == 0 and stats["records_by_form"]["NOVARS"] > 0
        forms = {f["formKey"] for f in fetch_all(c, f"{base}/forms")}
        assert {"EMPTY", "NOVARS", "ODD FORM$1"} <= forms
        odd = fetch_all(c, f"{base}/records", filter='formKey=="ODD FORM$1"')
        assert len(odd) == 10
        assert max(len(r["recordData"]["notes"]) for r in odd) == 100_000
        novars = fetch_all(c, f"{base}/records", filter="formKey==NOVARS")
        assert set(novars[0]["recordData"]) == {"dateCreated", "dateModified", "unvnum"}
        quoted = c.get(f"{base}/records", params={"recordDataFilter": r'say "hi"==x'})
        assert quoted.status_code == 400  # not a valid attribute name in the grammar


def test_million_records_start_fast_and_serve_last_page():
    rss0 = psutil.Process().memory_info().rss
    with SimulatorServer(SimulatorConfig(seed=7, studies=1, subjects=20_000)) as s:
        assert s.stats()["CARDIO-01"]["records"] == 1_000_000
        with httpx.Client(base_url=s.base_url, headers=KEYS, timeout=60) as c:
            body = c.get("/api/v1/edc/studies/CARDIO-01/records",
                         params={"page": 1999, "size": 500}).json()
        assert body["pagination"]["totalPages"] == 2000
        assert len(body["data"]) == 500
        assert body["data"][-1]["recordId"] == 100_000_000 + 1_000_000
        grown = psutil.Process().memory_info().rss - rss0
    # a generous bound: it catches materialising a million dicts (GBs), not noise
    assert grown < 1_500_000_000


def test_subprocess_mode():
    cfg = SimulatorConfig(seed=2, studies=1, subjects=2)
    with SimulatorServer(cfg, subprocess=True) as s:
        assert s.store is None
        r = httpx.get(f"{s.base_url}/api/v1/edc/studies", headers=KEYS)
        assert r.json()["data"][0]["studyKey"] == "CARDIO-01"
        assert s.stats()["CARDIO-01"]["records"] == 100


def test_the_audit_trails_date_column_is_what_its_rows_say():
    """Filters and sorts on recordRevisions.dateCreated use a vectorised column; it must agree
    with every rendered row, base and added revisions alike."""
    from imednet_assets.simulator import generator as gen

    store = build_store(SimulatorConfig(seed=8, studies=1, subjects=6))
    sizes = []
    for _ in range(2):  # the second time after the column was read (and its base part kept)
        store.advance("CARDIO-01", modify=30, add=4, delete=3)
        table = store.study("CARDIO-01").table("recordRevisions")
        column = table.columns["dateCreated"]()
        assert [gen.ts(v) for v in column] == [table.row(p)["dateCreated"]
                                               for p in range(table.n)]
        sizes.append(table.n)
    assert sizes[0] > 300 and sizes[1] == sizes[0] + 37


def test_filters_on_stored_timestamps_match_what_the_rows_say():
    """Tables without a vectorised column (subjects) filter on their rendered timestamps, parsed
    in one pass: after subjects are deleted, a filter from the clock finds exactly those."""
    store = build_store(SimulatorConfig(seed=10, studies=1, subjects=12))
    mark = store.clock + 1
    deleted = store.advance("CARDIO-01", delete_subjects=3)["deleted_subjects"]
    for value in (gen_ts(mark), f"{gen_ts(mark).replace(' ', 'T')}Z"):
        total, rows, _ = store.list_page("subjects", "CARDIO-01",
                                         filter=f'dateModified>="{value}"', size=50)
        assert total == 3 and sorted(r["subjectKey"] for r in rows) == sorted(deleted)
    before = 'dateModified<"2000-01-01 00:00:00"'
    total, _, _ = store.list_page("subjects", "CARDIO-01", filter=before, size=50)
    assert total == 0


def test_visit_and_query_modified_columns_are_what_their_rows_say():
    """Filtering visits and queries by dateModified uses vectorised columns (an index, as a real
    API has); they must agree with every rendered row, also after subjects were added."""
    from imednet_assets.simulator import generator as gen

    store = build_store(SimulatorConfig(seed=9, studies=2, subjects=7))
    store.advance("ONCO-02", add=5, delete_subjects=1)
    for study in ("CARDIO-01", "ONCO-02"):
        for entity in ("visits", "queries"):
            table = store.study(study).table(entity)
            column = table.columns["dateModified"]()
            assert table.n > 10
            assert [gen.ts(v) for v in column] == [table.row(p)["dateModified"]
                                                   for p in range(table.n)]
    mark = "2024-03-01T00:00:00Z"
    total, rows, _ = store.list_page("visits", "CARDIO-01", filter=f'dateModified>="{mark}"',
                                     size=500)
    every = store.list_page("visits", "CARDIO-01", size=500)[1]
    assert 0 < total < len(every)
    assert total == len(rows) == sum(r["dateModified"] >= "2024-03-01" for r in every)
