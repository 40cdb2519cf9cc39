"""A lake slice's manifest: its watermark and its change log, kept inside the slice folder.

The manifest is written into the staged folder before the swap, so it changes atomically with the
data it describes: a restored or replayed slice always carries its own correct watermark and
sequence. Destinations read the change log to apply only what changed since the sequence they
applied (stored in the destination itself); when the log no longer reaches back, or a full
rewrite happened since, they rewrite the study's slice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MANIFEST_FILE = "_manifest.json"
FULL = "full"
INCREMENTAL = "incremental"
#: The change log keeps at most this many keys over all its entries; older entries are dropped,
#: and a destination that is further behind rewrites the study's slice.
LOG_MAX_KEYS = 2_000_000
LOG_MAX_ENTRIES = 500


@dataclass(frozen=True)
class Change:
    """One ingest that changed the slice: `full` (anything may have changed) or `incremental`
    (exactly `keys` were inserted or replaced)."""

    sequence: int
    kind: str
    keys: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SliceManifest:
    """What a slice holds and how it got there.

    `lake_id` names the slice's lineage: a lake rebuilt from scratch gets a new one, so a
    destination never mistakes the same sequence number of another lake for its own.
    """

    entity: str
    study_key: str
    key_column: str
    lake_id: str
    sequence: int
    rows: int
    watermark: str | None = None
    """Highest `dateModified` (revisions: `dateCreated`) held, `YYYY-MM-DD HH:MM:SS` UTC."""
    log: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def token(self) -> str:
        """What a destination stores as 'applied': lineage and sequence together."""
        return f"{self.lake_id}:{self.sequence}"

    def keys_since(self, token: str | None) -> set[Any] | None:
        """Keys changed after the state `token`; an empty set when nothing changed, None when
        the destination must rewrite the slice (other lineage, log too short, a full change)."""
        later = self._changes_since(token)
        return None if later is None else {k for c in later for k in c.keys}

    def sequences_since(self, token: str | None) -> list[int] | None:
        """The merges after the state `token`, oldest first; None as for `keys_since`."""
        later = self._changes_since(token)
        return None if later is None else [c.sequence for c in later]

    def _changes_since(self, token: str | None) -> list[Change] | None:
        if token == self.token:
            return []
        lake_id, _, seq = (token or "").rpartition(":")
        if lake_id != self.lake_id or not seq.isdigit() or int(seq) > self.sequence:
            return None
        later = [c for c in self.log if c.sequence > int(seq)]
        if not later or later[0].sequence != int(seq) + 1:
            return None
        if any(c.kind != INCREMENTAL for c in later):
            return None
        return later

    def after_full(self, rows: int, watermark: str | None) -> SliceManifest:
        """The manifest once a full write replaced the slice."""
        seq = self.sequence + 1
        return replace(self, sequence=seq, rows=rows, watermark=watermark,
                       log=(Change(seq, FULL),))

    def after_merge(self, rows: int, watermark: str | None, keys: list[Any]) -> SliceManifest:
        """The manifest once an incremental merge replaced or added `keys`."""
        seq = self.sequence + 1
        log = [*self.log, Change(seq, INCREMENTAL, tuple(keys))]
        while len(log) > 1 and (
            len(log) > LOG_MAX_ENTRIES or sum(len(c.keys) for c in log) > LOG_MAX_KEYS
        ):
            log.pop(0)
        return replace(self, sequence=seq, rows=rows, watermark=watermark, log=tuple(log))

    @classmethod
    def first(cls, entity: str, study_key: str, key_column: str, rows: int,
              watermark: str | None) -> SliceManifest:
        """The manifest of a slice's first write (a new lineage)."""
        return cls(entity, study_key, key_column, uuid.uuid4().hex, 1, rows, watermark,
                   (Change(1, FULL),))

    # -- file ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready values (the file's body; an object-store lake embeds it)."""
        return {
            "entity": self.entity,
            "study_key": self.study_key,
            "key_column": self.key_column,
            "lake_id": self.lake_id,
            "sequence": self.sequence,
            "rows": self.rows,
            "watermark": self.watermark,
            "log": [{"sequence": c.sequence, "kind": c.kind, "keys": list(c.keys)}
                    for c in self.log],
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> SliceManifest:
        log = tuple(Change(c["sequence"], c["kind"], tuple(c["keys"])) for c in body["log"])
        return cls(body["entity"], body["study_key"], body["key_column"], body["lake_id"],
                   body["sequence"], body["rows"], body["watermark"], log)

    def write(self, folder: Path) -> None:
        (folder / MANIFEST_FILE).write_text(json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def read(cls, folder: Path) -> SliceManifest | None:
        """The folder's manifest; None for a slice written before manifests existed."""
        path = folder / MANIFEST_FILE
        if not path.is_file():
            return None
        return cls.from_dict(json.loads(path.read_text()))
