"""Fault knobs over real HTTP: scripted answers, rate limit, 5xx and malformed bodies."""

from __future__ import annotations

import httpx
import orjson
import pytest

from imednet_assets.simulator import SimulatorConfig, SimulatorServer
from imednet_assets_tests.simulator.conftest import KEYS

STUDIES = "/api/v1/edc/studies"


@pytest.fixture()
def fsim():
    with SimulatorServer(SimulatorConfig(seed=3, studies=1, subjects=2)) as s:
        yield s


def test_fail_next_queue_in_order(fsim):
    fsim.set_faults(fail_next=[{"status": 429, "retry_after": "1"}, {"status": 503},
                               {"malformed": True}])
    with httpx.Client(base_url=fsim.base_url, headers=KEYS) as c:
        r1, r2, r3, r4 = (c.get(STUDIES) for _ in range(4))
    assert r1.status_code == 429 and r1.headers["retry-after"] == "1"
    assert r1.json()["metadata"]["status"] == "TOO_MANY_REQUESTS"
    assert r1.json()["metadata"]["error"]["code"] == "9000"
    assert r2.status_code == 503
    assert r2.json()["metadata"]["status"] == "SERVICE_UNAVAILABLE"
    assert r3.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r3.content)
    assert r4.status_code == 200 and r4.json()["data"]


def test_control_routes_need_no_auth(fsim):
    assert httpx.get(f"{fsim.base_url}/_sim/health").json()["status"] == "ok"
    assert "CARDIO-01" in httpx.get(f"{fsim.base_url}/_sim/stats").json()


def test_rate_limit_gives_429_with_retry_after(fsim):
    fsim.set_faults(rate_limit=1)
    with httpx.Client(base_url=fsim.base_url, headers=KEYS) as c:
        codes = [c.get(STUDIES) for _ in range(5)]
    assert codes[0].status_code == 200
    limited = [r for r in codes if r.status_code == 429]
    assert len(limited) >= 3  # one token, refilled at 1/s
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert limited[0].json()["metadata"]["status"] == "TOO_MANY_REQUESTS"
    fsim.set_faults(rate_limit=None)
    assert httpx.get(fsim.base_url + STUDIES, headers=KEYS).status_code == 200


def test_error_rate_gives_5xx_with_error_body(fsim):
    fsim.set_faults(error_rate=1.0)
    r = httpx.get(fsim.base_url + STUDIES, headers=KEYS)
    assert r.status_code in (500, 502, 503)
    assert r.json()["metadata"]["error"]["code"] == "9000"
    fsim.set_faults(error_rate=0.0)
    assert httpx.get(fsim.base_url + STUDIES, headers=KEYS).status_code == 200


def test_malformed_rate_breaks_bodies(fsim):
    fsim.set_faults(malformed_rate=1.0)
    bodies = [httpx.get(fsim.base_url + STUDIES, headers=KEYS).content for _ in range(6)]
    fsim.set_faults(malformed_rate=0.0)
    for body in bodies:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        assert not isinstance(data.get("data"), list)  # wrong shape


def test_error_rate_is_deterministic_per_seed():
    def statuses() -> list[int]:
        cfg = SimulatorConfig(seed=11, studies=1, subjects=1, error_rate=0.5)
        with SimulatorServer(cfg) as s, httpx.Client(base_url=s.base_url, headers=KEYS) as c:
            return [c.get(STUDIES).status_code for _ in range(20)]

    first = statuses()
    assert first == statuses() and 200 in first and set(first) - {200}


def test_bad_faults_body_400(fsim):
    r = httpx.post(f"{fsim.base_url}/_sim/faults", json={"nope": 1})
    assert r.status_code == 400
