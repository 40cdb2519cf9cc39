"""Retry policy: what may be repeated, and how long to wait before the next attempt."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

MIN_WAIT_S = 0.1  # never a zero-wait retry storm, even on `Retry-After: 0`

# failures where the request provably never reached the server, so even a POST may be repeated
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retryable_status(method: str, status: int) -> bool:
    """GET: 429 and every 5xx. POST: 429 only (a 5xx may have created the records already)."""
    if status == 429:
        return True
    return method == "GET" and 500 <= status <= 599


def retryable_exception(method: str, exc: BaseException) -> bool:
    """GET: any transport error or timeout. POST: only errors before anything was sent."""
    if method == "GET":
        return isinstance(exc, httpx.TransportError)
    return isinstance(exc, _NOT_SENT)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None if absent/garbled."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def backoff_s(retry: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**retry)] (retry counts from 0)."""
    ceiling = min(max_s, base_s * (2**retry))
    return (rng or random).uniform(0.0, ceiling)


def wait_s(
    retry: int,
    base_s: float,
    max_s: float,
    retry_after: str | None = None,
    rng: random.Random | None = None,
) -> float:
    """Wait before the next attempt: the server's Retry-After if given, else jittered backoff;
    always at least MIN_WAIT_S and at most max_s."""
    told = parse_retry_after(retry_after)
    chosen = told if told is not None else backoff_s(retry, base_s, max_s, rng)
    return max(MIN_WAIT_S, min(max_s, chosen))
