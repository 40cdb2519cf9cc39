"""The iMednet API as a Dagster resource: connection knobs in, `ClientSettings` out."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from imednet_assets.client.settings import ClientSettings

SECRET_FIELDS = ("api_key", "security_key")


class ImednetResource(dg.ConfigurableResource):
    """Where the iMednet API is and how hard to push it. Set the keys with `dg.EnvVar` so their
    values never enter run config, event metadata or logs."""

    base_url: str = Field(description="API base URL, e.g. https://edc.prod.imednetapi.com")
    api_key: str = Field(description="x-api-key header (secret; use dg.EnvVar)")
    security_key: str = Field(description="x-imn-security-key header (secret; use dg.EnvVar)")
    concurrency: int = Field(default=8, description="Pages fetched at once per listing.")
    page_size: int = Field(default=500, description="Items per page (the API allows 1..500).")
    max_attempts: int = Field(default=5, description="Attempts per request, retries included.")
    incremental_lag_s: float = Field(
        default=5.0,
        ge=0,
        description="An incremental read starts this many seconds before the lake's watermark: "
        "dateModified has second resolution and writes land late (rows already held are dropped).",
    )
    probe_budget: int = Field(
        default=100,
        ge=10,  # one study's probe
        description="API requests the study change sensor may send per tick (10 per study: "
        "one per entity); "
        "studies past the budget are probed on the next ticks, in turn.",
    )

    def settings(self) -> ClientSettings:
        """Client settings; also works on an unbound resource (EnvVars read from the env now)."""
        return ClientSettings(
            base_url=_resolved(self.base_url),
            api_key=_resolved(self.api_key),
            security_key=_resolved(self.security_key),
            concurrency=self.concurrency,
            page_size=self.page_size,
            max_attempts=self.max_attempts,
        )

    def __repr_args__(self) -> Any:
        # pydantic's repr would show the resolved keys
        for name, value in super().__repr_args__():
            yield name, ("***" if name in SECRET_FIELDS else value)


def _resolved(value: str) -> str:
    # inside a run Dagster has already replaced EnvVars by their values; outside one it has not
    return value.get_value() or "" if isinstance(value, dg.EnvVar) else value
