"""Environment settings shared by the CLI and the Dagster definitions, and secret redaction."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "IMEDNET_ASSETS_DATA_DIR"
BASE_URL_ENV = "IMEDNET_BASE_URL"
API_KEY_ENV = "IMEDNET_API_KEY"
SECURITY_KEY_ENV = "IMEDNET_SECURITY_KEY"
LAKE_URL_ENV = "IMEDNET_ASSETS_LAKE_URL"
"""`s3://bucket/prefix` puts the lake on S3-compatible object storage; a plain path is a local
lake folder; unset: `<data dir>/lake`."""
S3_ENDPOINT_URL_ENV = "IMEDNET_ASSETS_S3_ENDPOINT_URL"
"""Any S3-compatible endpoint (MinIO, GCS interoperability, a test double); unset: AWS S3."""
LAKE_GRACE_ENV = "IMEDNET_ASSETS_LAKE_GRACE_SECONDS"
"""How long an object-store lake keeps a slice version no manifest names any more."""
# the standard AWS names, so the usual tooling and deployments set them
AWS_ACCESS_KEY_ID_ENV = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
AWS_REGION_ENV = "AWS_REGION"

DUCKDB_FILENAME = "imednet.duckdb"
LAKE_DIRNAME = "lake"
LAKE_CACHE_DIRNAME = "lake-cache"
DEFAULT_LAKE_GRACE_S = 3600.0
OBJECT_STORE_SCHEMES = ("s3",)

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def data_dir() -> Path:
    """Where the DuckDB file, the lake and the Dagster home live (`./data` unless overridden)."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data").resolve()


def duckdb_path() -> Path:
    return data_dir() / DUCKDB_FILENAME


def lake_url() -> str | None:
    """The lake's object-store URL (`s3://bucket/prefix`); None for a local lake."""
    value = (os.environ.get(LAKE_URL_ENV) or "").strip()
    return value if is_object_store_url(value) else None


def is_object_store_url(value: str) -> bool:
    return value.split("://", 1)[0].lower() in OBJECT_STORE_SCHEMES and "://" in value


def lake_root() -> Path:
    """The local lake folder: `IMEDNET_ASSETS_LAKE_URL` when it is a plain path, else
    `<data dir>/lake` (also the answer when the lake is on object storage: nothing local)."""
    value = (os.environ.get(LAKE_URL_ENV) or "").strip()
    if value and not is_object_store_url(value):
        return Path(value).expanduser().resolve()
    return data_dir() / LAKE_DIRNAME


def lake_cache_root() -> Path:
    """Where an object-store lake stages writes and keeps the slice versions it has read."""
    return data_dir() / LAKE_CACHE_DIRNAME


def lake_grace_s(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a slice version no manifest names stays readable (`LAKE_GRACE_ENV`)."""
    value = ((os.environ if environ is None else environ).get(LAKE_GRACE_ENV) or "").strip()
    return float(value) if value else DEFAULT_LAKE_GRACE_S


def redact(text: str, secrets: list[str | None] | tuple[str | None, ...] = ()) -> str:
    """Hide every given secret and any `user:password@` part of URLs in `text`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
