"""The async client against a scripted real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from email.utils import formatdate

import pytest

from imednet_assets.client import (
    ImednetAuthError,
    ImednetBadRequest,
    ImednetClient,
    ImednetConnectionError,
    ImednetMalformedResponse,
    ImednetNotFound,
    ImednetRateLimited,
    ImednetServerError,
    build_filter,
    term,
)
from imednet_assets_tests.client.conftest import API_KEY, SECURITY_KEY, make_settings
from imednet_assets_tests.client.scripted_server import (
    Reply,
    ScriptedServer,
    envelope,
    error_body,
    paged,
)

SITE = {"studyKey": "CARDIO-01", "siteId": 1, "siteName": "A", "siteEnrollmentStatus": "Open",
        "dateCreated": "2024-01-01 00:00:00", "dateModified": "2024-01-01 00:00:00"}  # fmt: skip
UNKNOWN = error_body("9000", "Unknown error")


async def collect(settings, endpoint="records", study="CARDIO-01", **kw) -> list[list[dict]]:
    async with ImednetClient(settings) as client:
        return [page async for page in client.iter_pages(endpoint, study, **kw)]


def run(coro):
    return asyncio.run(coro)


def test_headers_params_and_paths(server: ScriptedServer):
    server.fallback = paged(2)
    flt = build_filter(term("formKey", "==", "VS"), term("siteName", "==", "Chicago Hope"))
    settings = make_settings(server.base_url + "/api")  # a trailing /api is stripped
    sort = ["recordId,desc", "formId,asc"]
    pages = run(collect(settings, filter=flt, record_data_filter="aeterm==X", sort=sort))
    assert pages == [[{"n": 0}, {"n": 1}], [{"n": 2}, {"n": 3}]]
    first = server.requests[0]
    assert first.method == "GET" and first.path == "/api/v1/edc/studies/CARDIO-01/records"
    assert first.params == {
        "page": ["0"], "size": ["2"], "filter": ['formKey==VS;siteName=="Chicago Hope"'],
        "recordDataFilter": ["aeterm==X"], "sort": ["recordId,desc", "formId,asc"],
    }  # fmt: skip
    assert first.headers["x-api-key"] == API_KEY
    assert first.headers["x-imn-security-key"] == SECURITY_KEY
    assert first.headers["accept"] == "application/json"
    assert first.headers["content-type"] == "application/json"
    assert [r.page for r in server.requests] == [0, 1]


def test_study_key_is_path_quoted(server: ScriptedServer):
    server.fallback = paged(1)
    run(collect(make_settings(server.base_url), "sites", "A/B C"))
    assert server.requests[0].raw_path == "/api/v1/edc/studies/A%2FB%20C/sites"


def test_mixed_record_data_filter_is_refused_before_any_request(server: ScriptedServer):
    with pytest.raises(ValueError, match="may not mix"):
        run(collect(make_settings(server.base_url), record_data_filter="a==1;b==2,c==3"))
    assert server.requests == []


def test_pages_come_in_order_even_when_later_pages_answer_first(server: ScriptedServer):
    total = 12
    server.fallback = paged(total, rows=3, delay=lambda p: 0.0 if p == 0 else (total - p) * 0.01)
    pages = run(collect(make_settings(server.base_url, concurrency=6)))
    assert [row["n"] for page in pages for row in page] == list(range(total * 3))
    finished = sorted(server.requests, key=lambda r: r.finished)
    assert [r.page for r in finished] != list(range(total))  # they really finished out of order


def test_concurrency_bound_is_respected_and_page_zero_goes_alone(server: ScriptedServer):
    server.fallback = paged(30, delay=lambda p: 0.05)
    pages = run(collect(make_settings(server.base_url, concurrency=3)))
    assert len(pages) == 30
    assert server.max_in_flight == 3
    page0, rest = server.requests[0], server.requests[1:]
    assert page0.page == 0 and all(r.started >= page0.finished for r in rest)
    assert sorted(r.page for r in rest) == list(range(1, 30))


def test_expected_rows_start_their_pages_with_page_zero(server: ScriptedServer):
    # 4 pages of 2 rows, expected 7 rows: pages 0-3 start together (the probe counted them)
    server.fallback = paged(4, delay=lambda p: 0.05)
    pages = run(collect(make_settings(server.base_url, concurrency=8), expected_rows=7))
    assert [row["n"] for page in pages for row in page] == list(range(8))
    page0 = next(r for r in server.requests if r.page == 0)
    assert sorted(r.page for r in server.requests) == [0, 1, 2, 3]
    assert all(r.started < page0.finished for r in server.requests)


def test_expected_pages_past_the_end_are_dropped(server: ScriptedServer):
    # 2 pages where 5 were expected: pages 2-4 (answered with rows here) are not yielded
    server.fallback = paged(2)
    pages = run(collect(make_settings(server.base_url, concurrency=8), expected_rows=9))
    assert [row["n"] for page in pages for row in page] == list(range(4))
    assert all(r.page < 5 for r in server.requests)


def test_pages_past_the_expected_ones_are_read(server: ScriptedServer):
    server.fallback = paged(6)
    pages = run(collect(make_settings(server.base_url, concurrency=8), expected_rows=3))
    assert [row["n"] for page in pages for row in page] == list(range(12))
    assert sorted(r.page for r in server.requests) == list(range(6))


def test_expected_rows_stay_within_the_concurrency_bound(server: ScriptedServer):
    server.fallback = paged(30, delay=lambda p: 0.05)
    pages = run(collect(make_settings(server.base_url, concurrency=3), expected_rows=60))
    assert len(pages) == 30
    assert server.max_in_flight == 3


def test_window_is_bounded_and_closing_stops_fetching(server: ScriptedServer):
    server.fallback = paged(2000, delay=lambda p: 0.01)

    async def take_two() -> None:
        async with ImednetClient(make_settings(server.base_url, concurrency=4)) as client:
            pages = client.iter_pages("records", "CARDIO-01")
            assert (await anext(pages)) == [{"n": 0}, {"n": 1}]
            assert (await anext(pages)) == [{"n": 2}, {"n": 3}]
            await asyncio.sleep(0.3)  # a slow consumer: nothing beyond the window is fetched
            assert len(server.requests) == 1 + 4 + 1
            await pages.aclose()

    run(take_two())
    count = len(server.requests)
    time.sleep(0.1)
    assert len(server.requests) == count == 6


def test_retry_after_seconds_is_honoured(server: ScriptedServer):
    server.script(Reply(429, json=UNKNOWN, headers={"Retry-After": "1"}))
    server.fallback = paged(1)
    assert run(collect(make_settings(server.base_url))) == [[{"n": 0}, {"n": 1}]]
    first, second = server.requests
    assert second.started - first.finished >= 1.0


def test_retry_after_http_date_is_honoured(server: ScriptedServer):
    until = math.ceil(time.time()) + 1  # HTTP dates have whole seconds: wait 1..2 s
    server.script(Reply(503, json=UNKNOWN, headers={"Retry-After": formatdate(until, usegmt=True)}))
    server.fallback = paged(1)
    assert len(run(collect(make_settings(server.base_url)))) == 1
    assert server.requests[1].started >= until - 0.01


def test_transient_5xx_and_malformed_bodies_are_retried(server: ScriptedServer):
    server.script(Reply(502), Reply(504), Reply(500, json=UNKNOWN), Reply(body=b'{"data": [{"n'))
    server.fallback = paged(1)
    pages = run(collect(make_settings(server.base_url, max_attempts=5)))
    assert pages == [[{"n": 0}, {"n": 1}]]
    assert len(server.requests) == 5


def test_5xx_storm_ends_after_exactly_max_attempts(server: ScriptedServer, caplog):
    server.fallback = lambda seen: Reply(503, json=UNKNOWN)
    with caplog.at_level(logging.WARNING, logger="imednet_assets.client"), pytest.raises(
        ImednetServerError
    ) as info:
        run(collect(make_settings(server.base_url, max_attempts=4)))
    assert len(server.requests) == 4
    assert str(info.value) == (
        "records for study CARDIO-01: HTTP 503 after 4 attempts (code 9000: Unknown error)"
    )
    assert (info.value.status, info.value.attempts, info.value.code) == (503, 4, "9000")
    retries = [r.getMessage() for r in caplog.records if r.name == "imednet_assets.client"]
    assert len(retries) == 3
    assert retries[0].startswith("retrying records for study CARDIO-01 page 0: HTTP 503; ")


def test_429_storm_ends_rate_limited(server: ScriptedServer):
    server.fallback = lambda seen: Reply(429, json=UNKNOWN, headers={"Retry-After": "0"})
    with pytest.raises(ImednetRateLimited, match="HTTP 429 after 3 attempts"):
        run(collect(make_settings(server.base_url, max_attempts=3)))
    assert len(server.requests) == 3
    # Retry-After: 0 still waits the floor, no zero-wait storm
    assert server.requests[2].started - server.requests[1].finished >= 0.1


def test_malformed_page_fails_iter_batches_naming_endpoint_and_study(server: ScriptedServer):
    def answer(seen):
        if seen.page == 1:
            return Reply(body=b'{"metadata": {}, "pagination": {"currentPage": 1, "totalPa')
        return Reply(json=envelope(seen.page, 3, [SITE]))

    server.fallback = answer

    async def batches():
        async with ImednetClient(make_settings(server.base_url, max_attempts=2)) as client:
            return [b async for b in client.iter_batches("sites", "CARDIO-01")]

    with pytest.raises(ImednetMalformedResponse) as info:
        run(batches())
    assert str(info.value).startswith(
        "sites for study CARDIO-01 page 1: malformed response after 2 attempts (HTTP 200: "
    )
    assert (info.value.endpoint, info.value.study_key) == ("sites", "CARDIO-01")
    assert [r.page for r in server.requests].count(1) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"data": [], "pagination": {"currentPage": 0, "totalPages": 1}}, "asked for page 1"),
        ({"data": {}, "pagination": {"currentPage": 1, "totalPages": 2}}, "'data' is missing"),
        ({"data": [], "pagination": {"currentPage": "1", "totalPages": 2}}, "currentPage is"),
        ({"data": []}, "'pagination' is missing"),
        ([], "body is not a JSON object"),
    ],
)
def test_envelope_is_validated(server: ScriptedServer, body, reason):
    server.script(Reply(json=envelope(0, 2, [{"n": 0}])))
    server.fallback = lambda seen: Reply(json=body)
    with pytest.raises(ImednetMalformedResponse, match=reason):
        run(collect(make_settings(server.base_url, max_attempts=1)))


def test_client_errors_are_not_retried(server: ScriptedServer):
    field = {"attribute": "filter", "value": "x=="}
    server.script(
        Reply(400, json=error_body("1000", "Field raised validation errors", **field)),
        Reply(401, json=error_body("9001", "Insufficient permission")),
        Reply(404, body=b"not json"),
    )
    settings = make_settings(server.base_url)
    with pytest.raises(ImednetBadRequest) as bad:
        run(collect(settings))
    assert (bad.value.field_attribute, bad.value.field_value) == ("filter", "x==")
    with pytest.raises(ImednetAuthError, match="records for study CARDIO-01: HTTP 401 .code 9001"):
        run(collect(settings))
    with pytest.raises(ImednetNotFound, match=r"^sites for study S: HTTP 404$"):
        run(collect(settings, "sites", "S"))
    assert len(server.requests) == 3


def test_post_is_not_retried_on_503(server: ScriptedServer):
    server.fallback = lambda seen: Reply(503, json=UNKNOWN)

    async def post():
        async with ImednetClient(make_settings(server.base_url)) as client:
            return await client.post_records("CARDIO-01", [{"formKey": "VS", "data": {"a": 1}}])

    with pytest.raises(ImednetServerError) as info:
        run(post())
    assert len(server.requests) == 1
    assert server.requests[0].method == "POST"
    assert server.requests[0].body == b'[{"formKey":"VS","data":{"a":1}}]'
    assert str(info.value) == "records for study CARDIO-01: HTTP 503 (code 9000: Unknown error)"


def test_post_is_not_retried_on_read_timeout(server: ScriptedServer):
    server.fallback = lambda seen: Reply(202, json={"batchId": "b"}, delay_s=1.0)

    async def post():
        async with ImednetClient(make_settings(server.base_url, timeout_s=0.3)) as client:
            return await client.post_records("CARDIO-01", [])

    with pytest.raises(ImednetConnectionError, match="ReadTimeout"):
        run(post())
    assert len(server.requests) == 1


def test_post_retried_on_429_then_job_polled_to_completion(server: ScriptedServer):
    ticket = {"jobId": "j-1", "batchId": "b-1", "state": "created"}
    server.script(
        Reply(429, json=UNKNOWN, headers={"Retry-After": "0"}),
        Reply(202, json=ticket),
        Reply(json=dict(ticket, state="processing")),
        Reply(json=dict(ticket, state="completed")),
    )

    async def post_and_wait():
        async with ImednetClient(make_settings(server.base_url)) as client:
            job = await client.post_records("CARDIO-01", [{"formKey": "VS"}], email_notify=True)
            return job, await client.wait_for_job("CARDIO-01", job["batchId"], interval_s=0.01)

    job, done = run(post_and_wait())
    assert job == ticket and done["state"] == "completed"
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/api/v1/edc/studies/CARDIO-01/records"),
        ("POST", "/api/v1/edc/studies/CARDIO-01/records"),
        ("GET", "/api/v1/edc/studies/CARDIO-01/jobs/b-1"),
        ("GET", "/api/v1/edc/studies/CARDIO-01/jobs/b-1"),
    ]
    assert server.requests[0].headers["x-email-notify"] == "true"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_errors_name_the_host_never_the_keys():
    port = _closed_port()
    settings = make_settings(f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(ImednetConnectionError) as info:
        run(collect(settings, "sites", "S"))
    text = str(info.value)
    assert text.startswith(
        f"sites for study S page 0: cannot reach 127.0.0.1:{port} after 2 attempts (ConnectError: "
    )
    assert API_KEY not in text and SECURITY_KEY not in text


def test_secrets_never_reach_logs_reprs_or_errors(server: ScriptedServer, caplog):
    server.script(Reply(503, json=UNKNOWN), Reply(429, headers={"Retry-After": "0"}))
    server.fallback = lambda seen: Reply(403, json=error_body("9001", "Insufficient permission"))
    settings = make_settings(server.base_url)
    caplog.set_level(logging.DEBUG)  # root: includes httpx and httpcore debug output
    with pytest.raises(ImednetAuthError) as info:
        run(collect(settings))
    client = ImednetClient(settings)
    texts = [caplog.text, str(info.value), repr(info.value), repr(settings), str(settings),
             repr(client), str(info.value.__dict__)]  # fmt: skip
    assert any("httpx" in r.name or "httpcore" in r.name for r in caplog.records)
    assert any(r.name == "imednet_assets.client" for r in caplog.records)
    for text in texts:
        assert API_KEY not in text and SECURITY_KEY not in text


def test_list_studies_reads_every_page(server: ScriptedServer):
    server.fallback = lambda seen: Reply(
        json=envelope(seen.page, 2, [{"studyKey": f"S{seen.page}"}])
    )

    async def studies():
        async with ImednetClient(make_settings(server.base_url)) as client:
            return await client.list_studies()

    assert run(studies()) == [{"studyKey": "S0"}, {"studyKey": "S1"}]
    assert server.requests[0].path == "/api/v1/edc/studies"
