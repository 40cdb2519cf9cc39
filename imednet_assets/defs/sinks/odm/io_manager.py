"""ODM IO manager: writes one study's ODM file and swaps it in atomically.

The file is written through the bundles' `write_atomically` (a private temporary folder beside
the target, fsync, `os.replace`, an OS lock on the study folder), so a reader sees the old file
or the new one, never a part, and an identical file is left untouched. DuckDB spills its sort
into that same temporary folder, which the swap removes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import dagster as dg
from pydantic import Field

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.cells import study_folder
from imednet_assets.defs.sinks.bundles.io_manager import (
    StudyFilesIOManager,
    write_atomically,
)
from imednet_assets.defs.sinks.common import (
    DestinationError,
    error_detail,
)
from imednet_assets.defs.sinks.destination import WriteReport
from imednet_assets.defs.sinks.odm.source import OdmSource
from imednet_assets.defs.sinks.odm.writer import OdmKind, OdmStats, write_odm

DESTINATION = "ODM XML"

#: kind -> file suffix after the study folder name
SUFFIXES: dict[str, str] = {
    "snapshot": ".odm.xml",
    "transactional": ".transactional.odm.xml",
}


@dataclass(frozen=True)
class OdmWrite:
    """An ODM file to write: kind, study, and the lake slices it is made from."""

    kind: OdmKind
    study_key: str
    slices: Mapping[str, LakeSlice]


def odm_path(root: Path, study_key: str, kind: str) -> Path:
    """`<root>/<study folder>/<study folder><suffix>`, e.g.
    `bundles/CARDIO-01/CARDIO-01.odm.xml`."""
    folder = study_folder(study_key)
    return root / folder / f"{folder}{SUFFIXES[kind]}"


class OdmIOManager(StudyFilesIOManager):
    """Writes an `OdmWrite` for the run's study partition under `<root>/<study>/`."""

    label: ClassVar[str] = DESTINATION
    write_type: ClassVar[type] = OdmWrite

    root: str | None = Field(
        default=None,
        description="Root folder; defaults to <IMEDNET_ASSETS_DATA_DIR>/bundles (beside the "
        "study's other files).",
    )
    memory_limit: str = Field(
        default="128MB",
        description="DuckDB's memory for sorting the records and revisions (it spills beyond).",
    )
    batch_rows: int = Field(default=10_000, ge=1, description="Rows per Arrow batch read.")

    def write_output(self, context: dg.OutputContext, obj: OdmWrite) -> WriteReport:
        return self.write_file(obj, context.run_id)

    def _write(self, temp: Path, obj: OdmWrite) -> OdmStats:
        with OdmSource(obj.study_key, obj.slices, spill_dir=temp.parent / "spill",
                       memory_limit=self.memory_limit, batch_rows=self.batch_rows) as source:
            return write_odm(temp, source, obj.kind)

    def write_file(self, obj: OdmWrite, run_id: str = "run") -> WriteReport:
        """Write the file (always from the lake, identical bytes kept); raises
        `DestinationError`."""
        started = time.monotonic()
        target = odm_path(self.root_path(), obj.study_key, obj.kind)
        self._folder(obj.study_key)
        try:
            # the bundles' helper is typed for their stats; it returns what the writer returns
            written, digest, changed = write_atomically(
                target, lambda temp: self._write(temp, obj), run_id)  # type: ignore[arg-type,return-value]
        except DestinationError:
            raise
        except Exception as err:
            raise DestinationError(
                f"{DESTINATION}: the {obj.kind} file of study {obj.study_key} failed "
                f"({target}); the previous file is kept: {error_detail(err, limit=500)}"
            ) from err
        stats = cast(OdmStats, written)
        metadata: dict[str, Any] = {
            "path": dg.MetadataValue.path(str(target)),
            "kind": obj.kind,
            "subjects": stats.subjects,
            "form_data": stats.forms,
            "item_data": stats.items,
            "skipped_values": stats.skipped_values,
            "replaced_characters": stats.replaced_characters,
            "bytes": target.stat().st_size,
            "sha256": digest,
            "unchanged": not changed,
            "seconds": round(time.monotonic() - started, 3),
        }
        if obj.kind == "transactional":
            metadata["audit_records"] = stats.audit_records
        return WriteReport({obj.kind: stats.forms}, extra=metadata)
