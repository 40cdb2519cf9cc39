"""Every file export of a study produced from a cut instead of the live lake: the destinations'
own assets and IO managers run (`dg.materialize`) against the cut's frozen slices, into a folder
laid out like the data directory (`imednet.duckdb`, `bundles/<study>/…`).

Same cut, same bytes: the exports stamp the lake's data and file times, which the cut keeps (on a
local lake a cut exports exactly what the live lake exported when it was made; on object storage
the live files' times are this machine's download times, so there only the content matches). The
DuckDB file is the exception (DuckDB does not write byte-stable files); its tables are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from imednet_assets.defs.cuts.manifest import LAKE_DIRNAME, CutError, CutManifest, cut_dir
from imednet_assets.defs.ingest.assets import ENTITIES, LAKE_IO_MANAGER_KEY
from imednet_assets.defs.lake.io_manager import LakeIOManager, _known_schema
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.partitions import STUDY_PARTITIONS_NAME, study_partitions
from imednet_assets.defs.sinks.bundles.assets import bundle_assets
from imednet_assets.defs.sinks.bundles.definitions import bundle_resources
from imednet_assets.defs.sinks.duckdb.assets import duckdb_assets
from imednet_assets.defs.sinks.duckdb.definitions import duckdb_resources
from imednet_assets.defs.sinks.odm.assets import odm_assets
from imednet_assets.defs.sinks.odm.definitions import odm_resources
from imednet_assets.defs.sinks.statistical.assets import statistical_assets
from imednet_assets.defs.sinks.statistical.definitions import statistical_resources
from imednet_assets.settings import DUCKDB_FILENAME

BUNDLES_DIRNAME = "bundles"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
EXPORT_ASSETS = [*duckdb_assets, *bundle_assets, *statistical_assets, *odm_assets]


class FrozenLakeIOManager(LakeIOManager):
    """A cut's lake, read as it is: no lock files, no crash recovery (a cut's folders are
    read-only and never swapped) and no writes."""

    def read_slice(self, entity: str, study: str) -> LakeSlice:
        return LakeSlice.read(self.root_path(), entity, study, _known_schema(entity))

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        raise dg.Failure(f"the lake at {self.root} is a data cut: it is never written")


def export_resources(lake: LakeIOManager, to: Path) -> dict[str, Any]:
    """The lake to read and every file destination writing under `to`."""
    bundles = str(to / BUNDLES_DIRNAME)
    return {
        LAKE_IO_MANAGER_KEY: lake,
        **duckdb_resources(str(to / DUCKDB_FILENAME)),
        **bundle_resources(bundles, "names"),
        **statistical_resources(bundles),
        **odm_resources(bundles),
    }


def export_lake(lake: LakeIOManager, study: str, to: Path) -> dg.ExecuteInProcessResult:
    """Write `study`'s DuckDB file, bundles, statistical files and ODM files from `lake` into
    `to`, which must be empty (nothing of another export is left beside them)."""
    to = Path(to)
    if to.exists() and any(to.iterdir()):
        raise CutError(f"{to} is not empty: export into a new or empty folder")
    to.mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(STUDY_PARTITIONS_NAME, [study])
    # the lake entities as upstream specs: the sinks read them through the lake IO manager
    upstream = [dg.AssetSpec(["imednet", e], partitions_def=study_partitions) for e in ENTITIES]
    return dg.materialize(
        [*upstream, *EXPORT_ASSETS],
        selection=[k for a in EXPORT_ASSETS for k in a.keys],
        partition_key=study, instance=instance, run_config=QUIET,
        resources=export_resources(lake, to),
    )


def export_cut(name: str, study: str, to: Path,
               root: str | Path | None = None) -> dg.ExecuteInProcessResult:
    """`export_lake` from the frozen lake of the cut `name` (which must be of `study`)."""
    folder = cut_dir(root, name)
    manifest = CutManifest.read(folder)
    if manifest.study_key != study:
        raise CutError(f"data cut {name!r} is of study {manifest.study_key!r}, not {study!r}")
    return export_lake(FrozenLakeIOManager(root=str(folder / LAKE_DIRNAME)), study, to)
