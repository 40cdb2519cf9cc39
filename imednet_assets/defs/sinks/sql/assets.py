"""SQL sink assets: one per table family, each replaying one study from the Parquet lake.

Each asset only plans the write (which of the study's tables, which lake slices they depend on
and which key changes can be applied by); the `sql_io_manager` computes the rows with
`StudyTables` (the DuckDB sink's shapes, names cut to the database's identifier limit) and skips,
applies the changed keys, or replaces the study's slice, in one transaction. Every asset reads
the same five lake slices, so all of them derive the same naming plan (the dictionary's
`table_name`/`column_name` agree with the tables).
"""

from collections.abc import Callable, Mapping

import dagster as dg

from imednet_assets.defs.ingest.assets import ENTITIES as LAKE_ENTITIES
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.lake_inputs import SinkPart
from imednet_assets.defs.sinks.sql import ddl
from imednet_assets.defs.sinks.sql.io_manager import TABLES_BY_ASSET
from imednet_assets.defs.sinks.sql.writer import SqlStudyWrite
from imednet_assets.defs.sinks.tabular import ENTITIES, TableSpec

SINK = Sink("sql")
SQL_IO_MANAGER_KEY = SINK.io_manager_key
POOL = SINK.pool

#: asset -> (the lake entities its tables are built from, the keyed one among them). Only these
#: slices' change logs count for the asset: a new visit does not rewrite the form tables, and a
#: dictionary change (forms, variables) rewrites everything named after it.
DEPENDS_ON: dict[str, tuple[tuple[str, ...], str | None]] = {
    "subjects": (("subjects",), "subjects"),
    "visits": (("visits",), "visits"),
    "dictionary": (("forms", "variables"), None),
    "records_long": (("records", "forms", "variables"), "records"),
    "form_tables": (("records", "forms", "variables"), "records"),
}


def _named(*names: str) -> Callable[[TableSpec], bool]:
    return lambda spec: spec.name in names


def _is_form(spec: TableSpec) -> bool:
    return spec.kind == "form"


def study_write(name: str, study: str, slices: Mapping[str, LakeSlice]) -> SqlStudyWrite:
    """What asset `sql/<name>` writes for `study` from its lake `slices` (the asset's output)."""
    depends_on, keyed = DEPENDS_ON[name]
    form_tables = name == "form_tables"
    return SqlStudyWrite(
        name, study, slices,
        _is_form if form_tables else _named(*TABLES_BY_ASSET[name]),
        ddl.FORM_TABLE_PREFIX if form_tables else None,
        depends_on=depends_on,
        # (lake entity, its id column): what an apply deletes and re-inserts by
        keyed=(keyed, LAKE_ENTITIES[keyed][0]) if keyed else None,
    )


def _sql_asset(name: str, description: str) -> SinkPart:
    # every slice: the naming plan needs forms, variables and records
    return SINK.study_asset(name, ENTITIES, description,
                            lambda study, slices: study_write(name, study, slices))


sql_assets: list[dg.AssetsDefinition] = SINK.assets([
    _sql_asset("subjects", "The study's subjects."),
    _sql_asset("visits", "The study's visits."),
    _sql_asset(
        "dictionary",
        "Data dictionary: `forms` (with `table_name`) and `variables` (with `column_name`, "
        "`raw_column_name`, `column_type`): where every form and variable landed, names "
        "shortened to the database's identifier limit included.",
    ),
    _sql_asset(
        "records_long",
        "Long table: one row per record x recordData key (raw text value) with label and type.",
    ),
    _sql_asset(
        "form_tables",
        "One wide typed table per form (`form_<key>`), all forms of a study in one transaction; "
        "the study's rows leave the tables of forms it no longer has.",
    ),
])
