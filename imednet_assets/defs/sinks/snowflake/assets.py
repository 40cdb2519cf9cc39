"""Snowflake sink assets: each plans the load of one table family for one study from the lake.

Every asset takes the study's five lake slices (what `StudyTables` shapes the tables from) and
returns a `SnowflakeWrite`; the `snowflake_io_manager` stages and loads it.
"""


import dagster as dg

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.partitions import study_partitions
from imednet_assets.defs.sinks.snowflake.loader import SnowflakeWrite
from imednet_assets.defs.sinks.tabular import ENTITIES

LAKE_IO_MANAGER_KEY = "lake_io_manager"
SNOWFLAKE_IO_MANAGER_KEY = "snowflake_io_manager"
POOL = "snowflake_writer"
GROUP = "snowflake"

#: asset name -> (tables it loads, description); "form" means every form table of the study
TABLE_FAMILIES: dict[str, tuple[frozenset[str], str]] = {
    "subjects": (frozenset({"subjects"}), "The study's subjects (table SUBJECTS)."),
    "visits": (frozenset({"visits"}), "The study's visits (table VISITS)."),
    "dictionary": (
        frozenset({"forms", "variables"}),
        "Data dictionary: FORMS (with `table_name`) and VARIABLES (with `column_name`, "
        "`raw_column_name`, `column_type`), loaded together.",
    ),
    "records_long": (
        frozenset({"records_long"}),
        "Long table RECORDS_LONG: one row per record x recordData key, raw text value.",
    ),
    "form_tables": (
        frozenset({"form"}),
        "One wide typed table per form (`FORM_<key>`), all forms of a study in one transaction; "
        "the study's rows leave tables of forms it no longer has.",
    ),
}


def _snowflake_asset(name: str) -> dg.AssetsDefinition:
    tables, description = TABLE_FAMILIES[name]

    @dg.asset(
        name=name,
        key_prefix=["snowflake"],
        ins={e: dg.AssetIn(key=["imednet", e], input_manager_key=LAKE_IO_MANAGER_KEY)
             for e in ENTITIES},
        partitions_def=study_partitions,
        group_name=GROUP,
        kinds={"snowflake"},
        io_manager_key=SNOWFLAKE_IO_MANAGER_KEY,
        pool=POOL,
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        subjects: LakeSlice,
        visits: LakeSlice,
        forms: LakeSlice,
        variables: LakeSlice,
        records: LakeSlice,
    ) -> SnowflakeWrite:
        slices = {"subjects": subjects, "visits": visits, "forms": forms,
                  "variables": variables, "records": records}
        study = context.partition_key
        for entity, lake in slices.items():
            if lake.study_key != study:
                raise dg.Failure(description=f"lake slice of {entity} is for study "
                                 f"{lake.study_key}, the run is for study {study}")
        return SnowflakeWrite(f"snowflake/{name}", study, slices, tables)

    return _asset


snowflake_assets: list[dg.AssetsDefinition] = [_snowflake_asset(n) for n in TABLE_FAMILIES]
