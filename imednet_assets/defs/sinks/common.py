"""What every destination shares: write settings, retries with backoff, and its two errors.

A destination's resource subclasses `WriteSettings`, so every sink is tuned with the same knobs
(batch size, retries, backoff, upsert or insert). Errors name the destination, study and batch and
go through `settings.redact` first: no password or URI with credentials ever reaches a message.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dagster as dg
from pydantic import Field

from imednet_assets.settings import redact

T = TypeVar("T")


class DestinationError(Exception):
    """A write that failed for good; the message names destination, study and batch, no secrets."""


class DestinationConfigError(DestinationError):
    """The destination cannot be used at all (unreachable, refused credentials, bad settings).

    Raised before any data moves, naming the destination and its redacted address.
    """


class WriteSettings(dg.ConfigurableResource):
    """Knobs every destination has; a destination's resource subclasses this."""

    batch_size: int = Field(default=5_000, ge=1, description="Rows per write batch.")
    max_retries: int = Field(
        default=3, ge=0, description="Retries of a batch after a transient error."
    )
    retry_backoff_s: float = Field(
        default=0.5, ge=0, description="Wait before retry n is `retry_backoff_s * 2**n` seconds."
    )
    upsert: bool = Field(
        default=True,
        description="Idempotent upserts keyed by id (default); False writes plain inserts.",
    )


def error_detail(exc: BaseException, secrets: Sequence[str | None] = (), limit: int = 300) -> str:
    """`TypeName: message` of an error for a message or metadata: secrets and URL credentials
    masked, cut to `limit` characters."""
    return redact(f"{type(exc).__name__}: {exc}", list(secrets))[:limit]


def with_retries(
    action: Callable[[], T],
    *,
    settings: WriteSettings,
    transient: tuple[type[BaseException], ...],
    what: str,
    secrets: Sequence[str | None] = (),
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `action`; on a `transient` error wait `backoff * 2**attempt` and try again.

    After `settings.max_retries` retries the last error becomes a `DestinationError` that says
    `what` failed (e.g. "MongoDB at mongodb://***@host/: study X, batch 3 of 7"). Other errors
    pass through untouched.
    """
    attempt = 0
    while True:
        try:
            return action()
        except transient as exc:
            if attempt >= settings.max_retries:
                detail = error_detail(exc, secrets, 500)
                raise DestinationError(
                    f"{what} failed after {attempt + 1} attempt(s): {detail}"
                ) from None
            if on_retry is not None:
                on_retry(attempt + 1, exc)
            sleep(settings.retry_backoff_s * 2**attempt)
            attempt += 1


def batched(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """`items` cut into consecutive slices of at most `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TableDdl:
    """CREATE TABLE and ADD COLUMN text where identifiers are double-quoted, embedded quotes
    doubled (DuckDB, Snowflake): `ref(table)` is how the destination names a table, `create` how
    it creates one."""

    ref: Callable[[str], str]
    create: str = "CREATE TABLE"

    @staticmethod
    def _column(name: str, ctype: str) -> str:
        return '"' + name.replace('"', '""') + '" ' + ctype

    def create_table(self, table: str, columns: Sequence[tuple[str, str]]) -> str:
        cols = ", ".join(self._column(name, ctype) for name, ctype in columns)
        return f"{self.create} {self.ref(table)} ({cols})"

    def add_column(self, table: str, column: str, ctype: str) -> str:
        return f"ALTER TABLE {self.ref(table)} ADD COLUMN {self._column(column, ctype)}"
