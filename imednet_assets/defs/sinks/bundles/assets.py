"""File bundle assets: one per format, each writing one study's bundle from the Parquet lake.

Each asset only plans the write (format, study, lake slices); the `bundles_io_manager` reads the
study's tables (`StudyTables`, the tables every tabular destination gets) and swaps the file in.
"""


import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.bundles.io_manager import BundleFormat, BundleWrite

LAKE_IO_MANAGER_KEY = "lake_io_manager"
BUNDLES_IO_MANAGER_KEY = "bundles_io_manager"
POOL = "bundles_writer"
GROUP = "bundles"

#: format -> (Dagster kind, what the bundle is)
FORMATS: dict[BundleFormat, tuple[str, str]] = {
    "csv": ("csv", "a zip of one CSV file per form, the dictionary, forms and information"),
    "xlsx": ("excel", "an XLSX workbook: information sheet, dictionary sheet, one sheet per form"),
    "json": ("json", "a zip of one JSON lines file per form, the dictionary and information"),
}


def _lake_in(entity: str) -> dg.AssetIn:
    return dg.AssetIn(key=["imednet", entity], input_manager_key=LAKE_IO_MANAGER_KEY)


def _study_name(studies: LakeSlice) -> str | None:
    names = [n for n in studies.columns(["study_name"]).column("study_name").to_pylist() if n]
    return names[0] if names else None


def _bundle_asset(fmt: BundleFormat) -> dg.AssetsDefinition:
    kind, what = FORMATS[fmt]

    @dg.asset(
        key=["bundles", fmt],
        ins={e: _lake_in(e) for e in ("studies", "forms", "variables", "subjects", "visits",
                                      "records")},
        partitions_def=study_partitions,
        group_name=GROUP,
        kinds={kind},
        io_manager_key=BUNDLES_IO_MANAGER_KEY,
        pool=POOL,
        description=f"The study as {what}, under <data dir>/bundles/<study>/.",
    )
    def _asset(
        context: dg.AssetExecutionContext,
        studies: LakeSlice,
        forms: LakeSlice,
        variables: LakeSlice,
        subjects: LakeSlice,
        visits: LakeSlice,
        records: LakeSlice,
    ) -> BundleWrite:
        study = context.partition_key
        slices = {"forms": forms, "variables": variables, "subjects": subjects,
                  "visits": visits, "records": records}
        for lake in (studies, *slices.values()):
            if lake.study_key != study:
                raise dg.Failure(
                    description=f"lake slice of {lake.entity} is for study {lake.study_key}, "
                    f"the run is for study {study}"
                )
        return BundleWrite(fmt, study, slices, _study_name(studies))

    return _asset


bundle_assets: list[dg.AssetsDefinition] = [_bundle_asset(fmt) for fmt in FORMATS]
