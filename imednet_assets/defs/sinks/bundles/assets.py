"""File bundle assets: one per format, each writing one study's bundle from the Parquet lake.

Each asset only plans the write (format, study, lake slices); the `bundles_io_manager` reads the
study's tables (`StudyTables`, the tables every tabular destination gets) and swaps the file in.
"""


import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.io_manager import BundleFormat, BundleWrite
from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.lake_inputs import SinkPart
from imednet_assets.defs.sinks.tabular import ENTITIES

SINK = Sink("bundles")
BUNDLES_IO_MANAGER_KEY = SINK.io_manager_key
POOL = SINK.pool

#: format -> (Dagster kind, what the bundle is)
FORMATS: dict[BundleFormat, tuple[str, str]] = {
    "csv": ("csv", "a zip of one CSV file per form, the dictionary, forms and information"),
    "xlsx": ("excel", "an XLSX workbook: information sheet, dictionary sheet, one sheet per form"),
    "json": ("json", "a zip of one JSON lines file per form, the dictionary and information"),
}


def _study_name(studies: LakeSlice) -> str | None:
    names = [n for n in studies.columns(["study_name"]).column("study_name").to_pylist() if n]
    return names[0] if names else None


def _bundle_asset(fmt: BundleFormat) -> SinkPart:
    kind, what = FORMATS[fmt]

    def plan(study: str, slices: dict[str, LakeSlice]) -> BundleWrite:
        studies = slices.pop("studies")
        return BundleWrite(fmt, study, slices, _study_name(studies))

    return SINK.study_asset(fmt, ("studies", *ENTITIES),
                            f"The study as {what}, under <data dir>/bundles/<study>/.", plan,
                            kinds={kind})


bundle_assets: list[dg.AssetsDefinition] = SINK.assets([_bundle_asset(fmt) for fmt in FORMATS])
