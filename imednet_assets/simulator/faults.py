"""Fault injection: latency, token-bucket rate limit, random 5xx, broken bodies, scripted answers.

Random draws come from a generator seeded by the config seed, so a given request sequence meets the
same faults on every run. The rate limiter uses the real clock (it models time, not data).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass
class Fault:
    """What to answer instead of the real response (`malformed` keeps the real status 200)."""

    status: int = 200
    retry_after: str | None = None
    malformed: str | None = None  # "truncate" or "shape"


class FaultState:
    """Run-time knobs (changed through `POST /_sim/faults`) and the decision for each request."""

    def __init__(self, seed: int, latency_ms: float = 0.0, rate_limit: float | None = None,
                 error_rate: float = 0.0, malformed_rate: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.latency_ms = latency_ms
        self.error_rate = error_rate
        self.malformed_rate = malformed_rate
        self.fail_next: deque[Fault] = deque()
        self.requests = 0
        """API requests received so far (control routes not counted): what a sync cost."""
        self.rate_limit: float | None = None
        self.set_rate_limit(rate_limit)

    def set_rate_limit(self, rate: float | None) -> None:
        self.rate_limit = rate if rate else None
        self.capacity = max(1.0, rate or 0.0)
        self.tokens = self.capacity
        self.last = time.monotonic()

    def update(self, knobs: dict) -> None:
        """Apply a `/_sim/faults` body; unknown keys raise KeyError."""
        with self.lock:
            for key, value in knobs.items():
                if key == "rate_limit":
                    self.set_rate_limit(value)
                elif key in ("latency_ms", "error_rate", "malformed_rate"):
                    setattr(self, key, float(value or 0.0))
                elif key == "fail_next":
                    self.fail_next.extend(_fault(f) for f in value)
                elif key == "clear":
                    self.fail_next.clear()
                else:
                    raise KeyError(key)

    def snapshot(self) -> dict:
        return {"latency_ms": self.latency_ms, "rate_limit": self.rate_limit,
                "error_rate": self.error_rate, "malformed_rate": self.malformed_rate,
                "fail_next": len(self.fail_next), "requests": self.requests}

    def decide(self) -> Fault | None:
        """The fault for the next API request, or None to answer normally."""
        with self.lock:
            self.requests += 1
            if self.fail_next:
                return self.fail_next.popleft()
            if self.rate_limit:
                now = time.monotonic()
                self.tokens = min(self.capacity,
                                  self.tokens + (now - self.last) * self.rate_limit)
                self.last = now
                if self.tokens < 1.0:
                    wait = max(1, math.ceil((1.0 - self.tokens) / self.rate_limit))
                    return Fault(429, retry_after=str(wait))
                self.tokens -= 1.0
            if self.error_rate and self.rng.random() < self.error_rate:
                return Fault(self.rng.choice((500, 502, 503)))
            if self.malformed_rate and self.rng.random() < self.malformed_rate:
                return Fault(malformed=self.rng.choice(("truncate", "shape")))
            return None


def _fault(spec: dict) -> Fault:
    malformed = spec.get("malformed")
    if malformed is True:
        malformed = "truncate"
    retry = spec.get("retry_after")
    return Fault(status=int(spec.get("status", 200)),
                 retry_after=None if retry is None else str(retry),
                 malformed=malformed or None)


def malform(body: bytes, how: str) -> bytes:
    """A broken body: cut in the middle, or valid JSON of the wrong shape."""
    if how == "shape":
        return b'{"metadata":{"status":"OK"},"pagination":null,"data":{"unexpected":true}}'
    return body[: max(1, len(body) // 2)]
