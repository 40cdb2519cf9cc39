"""Statistical exports IO manager: writes one study's export in one format and swaps it in
atomically, beside the file bundles (`<root>/<study>/<study>.xpt.zip`, `.sav.zip`, `.dta.zip`).

The swap, the folder lock and the sweep of dead writers' temporaries are the bundles' own
(`write_atomically`); an identical export leaves the old file untouched.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import dagster as dg
from pydantic import Field

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.cells import study_folder
from imednet_assets.defs.sinks.bundles.content import WriteStats, extraction_time
from imednet_assets.defs.sinks.bundles.io_manager import (
    StudyFilesIOManager,
    write_atomically,
)
from imednet_assets.defs.sinks.common import DestinationError, error_detail
from imednet_assets.defs.sinks.destination import WriteReport
from imednet_assets.defs.sinks.statistical.formats import FORMATS, StatFormat
from imednet_assets.defs.sinks.statistical.frames import ValueRefused
from imednet_assets.defs.sinks.statistical.writer import ExportStats, write_export
from imednet_assets.defs.sinks.tabular import StudyTables

DESTINATION = "statistical exports"


@dataclass(frozen=True)
class StatisticalWrite:
    """An export to write: format, study, and the lake slices it is made from."""

    fmt: StatFormat
    study_key: str
    slices: Mapping[str, LakeSlice]


def export_path(root: Path, study_key: str, fmt: StatFormat) -> Path:
    """`<root>/<study folder>/<study folder>.<fmt>.zip`, e.g. `bundles/C-01/C-01.xpt.zip`."""
    folder = study_folder(study_key)
    return root / folder / f"{folder}.{fmt}.zip"


class StatisticalIOManager(StudyFilesIOManager):
    """Writes a `StatisticalWrite` for the run's study under `<root>/<study>/`."""

    label: ClassVar[str] = DESTINATION
    write_type: ClassVar[type] = StatisticalWrite

    root: str | None = Field(
        default=None,
        description="Root folder (shared with the file bundles); defaults to "
        "<IMEDNET_ASSETS_DATA_DIR>/bundles.",
    )
    batch_rows: int = Field(default=65_536, ge=1, description="Rows per Arrow batch read.")

    def write_output(self, context: dg.OutputContext, obj: StatisticalWrite) -> WriteReport:
        return self.write_export(obj, context.run_id)

    def write_export(self, obj: StatisticalWrite, run_id: str = "run") -> WriteReport:
        """Write the export (no sync state: always from the lake, identical bytes kept)."""
        started = time.monotonic()
        target = export_path(self.root_path(), obj.study_key, obj.fmt)
        self._folder(obj.study_key)
        stats = ExportStats()

        def write(temp: Path) -> WriteStats:
            nonlocal stats
            stats = write_export(temp, obj.fmt, tables, extraction_time(obj.slices),
                                 self.batch_rows)
            return WriteStats(rows=stats.rows)

        try:
            with StudyTables(obj.study_key, obj.slices) as tables:
                _, digest, changed = write_atomically(target, write, run_id)
        except ValueRefused as err:
            raise DestinationError(
                f"{DESTINATION}: the {obj.fmt} export refused a value ({err}); the previous "
                "export is kept") from None
        except DestinationError:
            raise
        except Exception as err:
            raise DestinationError(
                f"{DESTINATION}: the {obj.fmt} export of study {obj.study_key} failed "
                f"({target}); the previous export is kept: {error_detail(err, limit=500)}"
            ) from err
        metadata: dict[str, dg.RawMetadataValue] = {
            "path": dg.MetadataValue.path(str(target)),
            "format": FORMATS[obj.fmt].what,
            "datasets": dg.MetadataValue.json(dict(sorted(stats.datasets.items()))),
            "rows_by_table": dg.MetadataValue.json(dict(sorted(stats.rows.items()))),
            "split_values": stats.split_values,
            # numbers beyond what SAS transport holds, written as missing (the raw text keeps them)
            "numbers_out_of_range": stats.out_of_range,
            "bytes": target.stat().st_size,
            "sha256": digest,
            "unchanged": not changed,
            "seconds": round(time.monotonic() - started, 3),
        }
        return WriteReport(stats.rows, extra=metadata)

    def load_input(self, context: dg.InputContext) -> Path:
        """The path of the study's export in the upstream asset's format."""
        fmt = context.upstream_output.asset_key.path[-1] if context.upstream_output else None
        if fmt not in FORMATS:
            raise dg.Failure(description=f"{DESTINATION}: no format {fmt!r}")
        path = export_path(self.root_path(), context.partition_key, fmt)  # type: ignore[arg-type]
        if not path.exists():
            raise dg.Failure(
                description=f"{DESTINATION}: no {fmt} export of study {context.partition_key} "
                f"at {path}: materialize statistical/{fmt} for that partition first")
        return path
