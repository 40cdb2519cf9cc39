"""Pseudonymisation settings and the keyed pseudonyms themselves (no data handling here).

A destination named in `IMEDNET_ASSETS_PSEUDONYMISE` receives pseudonymised lake slices: subject
keys, ids and OIDs replaced by HMAC-SHA256 pseudonyms under `IMEDNET_ASSETS_PSEUDONYM_KEY`, every
date of a subject shifted by one whole number of days derived from the same key, and the values
of `IMEDNET_ASSETS_IDENTIFYING_VARIABLES` masked. Pseudonyms are deterministic, so every
destination and every refresh agree; the key is read at run time and never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

PSEUDONYMISE_ENV = "IMEDNET_ASSETS_PSEUDONYMISE"
"""Comma-separated destination names (`duckdb,sql,bundles`) that receive pseudonymised data."""
PSEUDONYM_KEY_ENV = "IMEDNET_ASSETS_PSEUDONYM_KEY"
"""The HMAC key (a secret of at least `MIN_KEY_LENGTH` characters)."""
DATE_SHIFT_ENV = "IMEDNET_ASSETS_DATE_SHIFT_DAYS"
"""Dates move by a per-subject offset in [-N, -1] or [1, N] days (default `DEFAULT_SHIFT_DAYS`)."""
IDENTIFYING_ENV = "IMEDNET_ASSETS_IDENTIFYING_VARIABLES"
"""Comma-separated variable names (any case) whose values are masked (null)."""
DEFAULT_SHIFT_DAYS = 30
MIN_KEY_LENGTH = 16
# pseudonymised subject ids stay below 2**53: exact in JSON, JavaScript, Excel and doubles
_ID_SPACE = 2**53 - 1


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in (value or "").split(",") if n.strip()}))


def pseudonymised_destinations(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The destinations that opted in (`IMEDNET_ASSETS_PSEUDONYMISE`), lower case."""
    env = os.environ if environ is None else environ
    return tuple(n.lower() for n in _names(env.get(PSEUDONYMISE_ENV)))


@dataclass(frozen=True)
class Pseudonymiser:
    """The keyed pseudonyms of one run: subject keys, ids, OIDs and date offsets per study."""

    key: bytes
    shift_days: int
    identifying: tuple[str, ...]

    def __repr__(self) -> str:  # the key must never reach a log or a message
        return f"Pseudonymiser(shift_days={self.shift_days}, identifying={self.identifying})"

    def _digest(self, domain: str, study: str, value: Any) -> bytes:
        # domain-separated, per study: the same subject key in two studies is two people
        message = "\x1f".join((domain, study, str(value))).encode()
        return hmac.new(self.key, message, hashlib.sha256).digest()

    def subject_key(self, study: str, value: str) -> str:
        return "PSN-" + self._digest("subject_key", study, value).hex()[:16].upper()

    def subject_oid(self, study: str, value: str) -> str:
        return "PSN-OID-" + self._digest("subject_oid", study, value).hex()[:16].upper()

    def subject_id(self, study: str, value: int) -> int:
        return 1 + int.from_bytes(self._digest("subject_id", study, value)[:8]) % _ID_SPACE

    def offset_days(self, study: str, subject: str) -> int:
        """The subject's date shift: never 0, at most `shift_days` either way."""
        n = int.from_bytes(self._digest("date_offset", study, subject)[:8]) % (2 * self.shift_days)
        return n - self.shift_days if n < self.shift_days else n - self.shift_days + 1

    def lineage_tag(self, lake_id: str) -> str:
        """A tag for the pseudonymised slices' lineage: a destination that switches key or
        settings sees another lineage and rewrites (the tag cannot give the key back)."""
        settings = f"{self.shift_days}|{','.join(self.identifying)}"
        return self._digest("lineage", settings, lake_id).hex()[:12]

    def metadata(self) -> dict[str, Any]:
        """What the materialization says about the pseudonymisation: the settings, not the key."""
        return {
            "pseudonymised": True,
            "pseudonymisation": dg.MetadataValue.json({
                "subject_columns": ["subject_key", "subject_id", "subject_oid"],
                "pseudonym": "HMAC-SHA256 with a key from " + PSEUDONYM_KEY_ENV,
                "date_shift_days": [-self.shift_days, self.shift_days],
                "identifying_variables": list(self.identifying),
                "identifying_variables_handling": "masked (null)",
                "extra_column": "dropped (null)",
            }),
        }


def pseudonymiser(destination: str,
                  environ: Mapping[str, str] | None = None) -> Pseudonymiser | None:
    """The run's `Pseudonymiser` when `destination` opted in, else None; a missing or short key
    or a bad shift range fails the step naming the destination (never showing the key)."""
    env = os.environ if environ is None else environ
    if destination.lower() not in pseudonymised_destinations(env):
        return None
    key = dg.EnvVar(PSEUDONYM_KEY_ENV).get_value() if environ is None else env.get(
        PSEUDONYM_KEY_ENV)
    if not key:
        raise dg.Failure(description=(
            f"{destination}: pseudonymisation is on ({PSEUDONYMISE_ENV}) but "
            f"{PSEUDONYM_KEY_ENV} is not set; set the key or take {destination} out of "
            f"{PSEUDONYMISE_ENV}"))
    if len(key) < MIN_KEY_LENGTH:
        raise dg.Failure(description=(
            f"{destination}: {PSEUDONYM_KEY_ENV} is shorter than {MIN_KEY_LENGTH} characters; "
            "use a long random secret"))
    raw = (env.get(DATE_SHIFT_ENV) or "").strip()
    if raw and (not raw.isdigit() or int(raw) < 1):
        raise dg.Failure(description=(
            f"{destination}: {DATE_SHIFT_ENV} must be a whole number of days of at least 1, "
            f"not {raw!r}"))
    return Pseudonymiser(key=key.encode(), shift_days=int(raw) if raw else DEFAULT_SHIFT_DAYS,
                         identifying=_names((env.get(IDENTIFYING_ENV) or "").lower()))
