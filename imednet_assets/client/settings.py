"""Connection settings of the iMednet client; the keys never appear in repr or str."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from imednet_assets.settings import API_KEY_ENV, BASE_URL_ENV, SECURITY_KEY_ENV

MAX_PAGE_SIZE = 500  # the API's documented maximum


def normalise_base_url(url: str) -> str:
    """Strip trailing `/` and a trailing `/api`, like the imednet SDK (we add `/api/v1/...`)."""
    url = url.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")].rstrip("/")
    return url


@dataclass(frozen=True)
class ClientSettings:
    """Where the API is, the two keys, and the paging/concurrency/retry knobs."""

    base_url: str
    api_key: str = field(repr=False)
    security_key: str = field(repr=False)
    concurrency: int = 8
    page_size: int = 500
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalise_base_url(self.base_url))
        if not self.base_url:
            raise ValueError("base_url is required")
        if not self.api_key or not self.security_key:
            raise ValueError("api_key and security_key are both required")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {self.page_size}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0 or self.timeout_s <= 0:
            raise ValueError("backoff and timeout values must be positive")

    def __str__(self) -> str:
        return repr(self)

    @property
    def host(self) -> str:
        """host[:port] of the API, safe to show (never carries credentials)."""
        parts = urlsplit(self.base_url)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"

    @property
    def secrets(self) -> tuple[str, str]:
        return (self.api_key, self.security_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ClientSettings:
        """Read IMEDNET_BASE_URL / IMEDNET_API_KEY / IMEDNET_SECURITY_KEY; `overrides` win."""
        env = os.environ if env is None else env
        names = {"base_url": BASE_URL_ENV, "api_key": API_KEY_ENV, "security_key": SECURITY_KEY_ENV}
        values: dict[str, object] = {attr: env.get(var, "") for attr, var in names.items()}
        values.update(overrides)
        missing = [var for attr, var in names.items() if not values[attr]]
        if missing:
            raise ValueError(f"missing environment variables: {', '.join(missing)}")
        return cls(**values)  # type: ignore[arg-type]
