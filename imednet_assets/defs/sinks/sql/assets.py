"""SQL sink assets: one per table family, each replaying one study from the Parquet lake.

Each asset only plans the write (which of the study's tables); the `sql_io_manager` computes the
rows with `StudyTables` (the DuckDB sink's shapes, names cut to the database's identifier limit)
and replaces the study's slice in one transaction. Every asset reads the same five lake slices, so
all of them derive the same naming plan (the dictionary's `table_name`/`column_name` agree with
the tables).
"""

from collections.abc import Callable

import dagster as dg

from imednet_assets.defs.sinks.lake_inputs import study_sink_asset
from imednet_assets.defs.sinks.sql import ddl
from imednet_assets.defs.sinks.sql.io_manager import TABLES_BY_ASSET
from imednet_assets.defs.sinks.sql.writer import SqlStudyWrite
from imednet_assets.defs.sinks.tabular import ENTITIES, TableSpec

SQL_IO_MANAGER_KEY = "sql_io_manager"
POOL = "sql_writer"
GROUP = "sql"

def _sql_asset(name: str, wants: Callable[[TableSpec], bool], description: str,
               stale_prefix: str | None = None) -> dg.AssetsDefinition:
    return study_sink_asset(
        key=["sql", name],
        entities=ENTITIES,
        group=GROUP,
        kinds={"sql"},
        io_manager_key=SQL_IO_MANAGER_KEY,
        pool=POOL,
        description=description,
        plan=lambda study, slices: SqlStudyWrite(name, study, slices, wants, stale_prefix),
    )


def _named(*names: str) -> Callable[[TableSpec], bool]:
    return lambda spec: spec.name in names


def _is_form(spec: TableSpec) -> bool:
    return spec.kind == "form"


sql_assets: list[dg.AssetsDefinition] = [
    _sql_asset("subjects", _named(*TABLES_BY_ASSET["subjects"]), "The study's subjects."),
    _sql_asset("visits", _named(*TABLES_BY_ASSET["visits"]), "The study's visits."),
    _sql_asset(
        "dictionary",
        _named(*TABLES_BY_ASSET["dictionary"]),
        "Data dictionary: `forms` (with `table_name`) and `variables` (with `column_name`, "
        "`raw_column_name`, `column_type`): where every form and variable landed, names "
        "shortened to the database's identifier limit included.",
    ),
    _sql_asset(
        "records_long",
        _named(*TABLES_BY_ASSET["records_long"]),
        "Long table: one row per record x recordData key (raw text value) with label and type.",
    ),
    _sql_asset(
        "form_tables",
        _is_form,
        "One wide typed table per form (`form_<key>`), all forms of a study in one transaction; "
        "the study's rows leave the tables of forms it no longer has.",
        stale_prefix=ddl.FORM_TABLE_PREFIX,
    ),
]
