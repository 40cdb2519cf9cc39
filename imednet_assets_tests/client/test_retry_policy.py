"""Retry policy as pure functions: what is retried, how long to wait."""

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from imednet_assets.client.retry import (
    MIN_WAIT_S,
    backoff_s,
    parse_retry_after,
    retryable_exception,
    retryable_status,
    wait_s,
)


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = datetime(2025, 6, 5, 21, 12, 9, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=9), usegmt=True), now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_wait_has_a_floor_and_a_cap():
    assert wait_s(0, 0.5, 30.0, retry_after="0") == MIN_WAIT_S
    assert wait_s(0, 0.5, 30.0, retry_after="-4") == MIN_WAIT_S
    assert wait_s(0, 0.5, 30.0, retry_after="2") == 2.0
    assert wait_s(0, 0.5, 10.0, retry_after="3600") == 10.0
    assert wait_s(0, 0.0, 30.0) == MIN_WAIT_S  # zero backoff never means zero wait


def test_full_jitter_stays_inside_the_exponential_ceiling():
    rng = random.Random(1)
    draws = [backoff_s(3, 0.5, 30.0, rng) for _ in range(500)]
    assert min(draws) >= 0.0 and max(draws) <= 4.0  # 0.5 * 2**3
    assert max(draws) > 3.0 and min(draws) < 1.0  # spread over the range, not fixed
    assert max(backoff_s(20, 0.5, 30.0, rng) for _ in range(200)) <= 30.0


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("GET", 429, True), ("GET", 500, True), ("GET", 502, True), ("GET", 503, True),
        ("GET", 504, True), ("GET", 400, False), ("GET", 401, False), ("GET", 404, False),
        ("POST", 429, True), ("POST", 500, False), ("POST", 503, False), ("POST", 504, False),
    ],
)  # fmt: skip
def test_retryable_status(method, status, expected):
    assert retryable_status(method, status) is expected


def test_retryable_exceptions_post_only_when_nothing_was_sent():
    request = httpx.Request("POST", "http://127.0.0.1/")
    connect = httpx.ConnectError("refused", request=request)
    read_timeout = httpx.ReadTimeout("slow", request=request)
    reset = httpx.RemoteProtocolError("closed", request=request)
    assert all(retryable_exception("GET", e) for e in (connect, read_timeout, reset))
    assert retryable_exception("POST", connect)
    assert retryable_exception("POST", httpx.ConnectTimeout("slow", request=request))
    assert not retryable_exception("POST", read_timeout)
    assert not retryable_exception("POST", reset)
    assert not retryable_exception("GET", ValueError("not transport"))
