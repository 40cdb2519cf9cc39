"""Environment settings shared by the CLI and the Dagster definitions, and secret redaction."""

from __future__ import annotations

import os
import re
from pathlib import Path

DATA_DIR_ENV = "IMEDNET_ASSETS_DATA_DIR"
BASE_URL_ENV = "IMEDNET_BASE_URL"
API_KEY_ENV = "IMEDNET_API_KEY"
SECURITY_KEY_ENV = "IMEDNET_SECURITY_KEY"

DUCKDB_FILENAME = "imednet.duckdb"
LAKE_DIRNAME = "lake"

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def data_dir() -> Path:
    """Where the DuckDB file, the lake and the Dagster home live (`./data` unless overridden)."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data").resolve()


def duckdb_path() -> Path:
    return data_dir() / DUCKDB_FILENAME


def lake_root() -> Path:
    return data_dir() / LAKE_DIRNAME


def redact(text: str, secrets: list[str | None] | tuple[str | None, ...] = ()) -> str:
    """Hide every given secret and any `user:password@` part of URLs in `text`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
