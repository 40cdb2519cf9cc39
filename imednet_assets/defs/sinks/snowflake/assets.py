"""Snowflake sink assets: each plans the load of one table family for one study from the lake.

Every asset takes the study's five lake slices (what `StudyTables` shapes the tables from) and
returns a `SnowflakeWrite`; the `snowflake_io_manager` stages and loads it: nothing when the
destination's sync state already holds the lake state of the slices the tables depend on, only
the changed keys when the change log reaches back, else the study's whole slice
(`loader.TABLE_INPUTS`).
"""


import dagster as dg

from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.lake_inputs import SinkPart
from imednet_assets.defs.sinks.snowflake.loader import SnowflakeWrite
from imednet_assets.defs.sinks.tabular import ENTITIES

SINK = Sink("snowflake")
SNOWFLAKE_IO_MANAGER_KEY = SINK.io_manager_key
POOL = SINK.pool

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


def _snowflake_asset(name: str) -> SinkPart:
    tables, description = TABLE_FAMILIES[name]
    return SINK.study_asset(
        name, ENTITIES, description,
        lambda study, slices: SnowflakeWrite(f"snowflake/{name}", study, slices, tables))


snowflake_assets: list[dg.AssetsDefinition] = SINK.assets(
    [_snowflake_asset(n) for n in TABLE_FAMILIES])
