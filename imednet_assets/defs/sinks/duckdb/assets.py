"""DuckDB sink assets: one per table family, each replaying one study from the Parquet lake.

Each asset only plans the write (which tables, which SELECT over which lake files); the
`duckdb_io_manager` runs it in one transaction. Rows go lake -> DuckDB through `read_parquet`,
never through Python; only the small data dictionary (variables) is read into Python to name
columns.
Deleted records (`deleted = true`) are kept, flagged, in records_long and the form tables.
"""


import dagster as dg
import pyarrow as pa

from imednet_assets.defs.ingest.assets import ENTITIES
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.destination import Sink
from imednet_assets.defs.sinks.duckdb import naming, sql
from imednet_assets.defs.sinks.duckdb.io_manager import ColumnTypes, StudyWrite, TableLoad
from imednet_assets.defs.sinks.duckdb.naming import FormTable, mapping_tables, plan_form_tables
from imednet_assets.defs.sinks.lake_inputs import SinkPart

SINK = Sink("duckdb")
DUCKDB_IO_MANAGER_KEY = SINK.io_manager_key
POOL = SINK.pool

#: Entities copied column for column (lake schema = table schema).
PLAIN_ENTITIES = (
    "studies",
    "sites",
    "intervals",
    "subjects",
    "visits",
    "record_revisions",
    "queries",
)

#: Entities whose changed rows are replaced by key (the rest are small and rewritten whole).
KEYED_ENTITIES = ("subjects", "visits", "record_revisions", "queries")

# Registered Arrow relations (names only live on the write's connection).
_MAP = "_imednet_name_map"
_DICTIONARY = "_imednet_dictionary"
_KEYED_ROWS = sql.quote_ident(sql.KEYED_ROWS)


def _source(lake: LakeSlice, relations: dict[str, pa.Table]) -> str:
    """FROM-clause text for a slice: its files, or an empty table of its schema when it has none."""
    if lake.files:
        return sql.read_parquet_sql(lake.files)
    name = f"_imednet_empty_{lake.entity}"
    relations[name] = lake.schema.empty_table()
    return sql.quote_ident(name)


def _keyed(entity: str) -> tuple[str, str]:
    """(entity, its id column): what an incremental write deletes and re-inserts by."""
    return entity, ENTITIES[entity][0]


def _dictionary(variables: LakeSlice) -> pa.Table:
    return variables.columns(list(naming.DICTIONARY_COLUMNS))


def _plan(
    forms: LakeSlice, variables: LakeSlice, records: LakeSlice | None = None
) -> list[FormTable]:
    """The study's naming plan; every asset derives it the same way, so the names agree."""
    extra = records.distinct("form_key") if records is not None else []
    return plan_form_tables(forms.distinct("form_key"), _dictionary(variables), extra)


def _entity_asset(entity: str) -> SinkPart:
    @SINK.asset(entity, {"lake": entity}, f"The lake's {entity}, copied as they are, by study.")
    def _asset(study: str, lake: LakeSlice) -> StudyWrite:
        relations: dict[str, pa.Table] = {}
        source = _source(lake, relations)
        keyed = entity in KEYED_ENTITIES
        select = sql.entity_select_sql(_KEYED_ROWS if keyed else source)
        return StudyWrite(entity, study, (TableLoad(entity, lambda _types: select),), relations,
                          slices={entity: lake}, keyed=_keyed(entity) if keyed else None,
                          keyed_source=source if keyed else None)

    return _asset


entity_assets = [_entity_asset(entity) for entity in PLAIN_ENTITIES]


@SINK.asset(
    "forms",
    {"forms": "forms", "variables": "variables"},
    "Forms of the study, with `table_name`: the wide DuckDB table holding its records.",
)
def forms_asset(study: str, forms: LakeSlice, variables: LakeSlice) -> StudyWrite:
    name_map, _ = mapping_tables(_plan(forms, variables))
    relations: dict[str, pa.Table] = {_MAP: name_map}
    select = sql.with_mapping_sql(_source(forms, relations), _MAP, ["form_key"], ["table_name"])
    return StudyWrite("forms", study, (TableLoad("forms", lambda _types: select),), relations,
                      slices={"forms": forms, "variables": variables})


@SINK.asset(
    "variables",
    {"variables": "variables"},
    "Data dictionary: one row per variable (form key/name, type, label, sequence) with "
    "`column_name` (and `raw_column_name`, `column_type`) in its form's wide table.",
)
def variables_asset(study: str, variables: LakeSlice) -> StudyWrite:
    # Column names depend only on the variables of each form, so the forms slice is not needed.
    plan = plan_form_tables([], _dictionary(variables))
    _, name_map = mapping_tables(plan)
    relations: dict[str, pa.Table] = {_MAP: name_map}
    select = sql.with_mapping_sql(
        _source(variables, relations),
        _MAP,
        ["form_key", "variable_name"],
        ["column_name", "raw_column_name", "column_type"],
    )
    return StudyWrite(
        "variables", study, (TableLoad("variables", lambda _types: select),), relations,
        slices={"variables": variables},
    )


@SINK.asset(
    "records_long",
    {"records": "records", "variables": "variables"},
    "Long table: one row per record x recordData key (raw text value), with label and type "
    "for keys that are variables; housekeeping keys are kept with is_variable = false.",
)
def records_long_asset(study: str, records: LakeSlice, variables: LakeSlice) -> StudyWrite:
    plan = plan_form_tables([], _dictionary(variables))
    _, dictionary = mapping_tables(plan)
    relations: dict[str, pa.Table] = {_DICTIONARY: dictionary}
    select = sql.long_select_sql(_KEYED_ROWS, _DICTIONARY)
    return StudyWrite(
        "records_long", study, (TableLoad("records_long", lambda _types: select),), relations,
        slices={"records": records, "variables": variables}, keyed=_keyed("records"),
        keyed_source=_source(records, relations),
    )


def _wide_load(plan: FormTable, source: str) -> TableLoad:
    def build(types: ColumnTypes) -> str:
        text = [
            c.column_name for c in plan.columns if types.get(c.column_name.lower()) == "VARCHAR"
        ]
        return sql.wide_select_sql(source, plan.form_key, plan.columns, text)

    comments = {c.raw_column_name: sql.raw_comment(c.column_name)
                for c in plan.columns if c.raw_column_name is not None}
    return TableLoad(plan.table_name, build, comments, plan.column_descriptions())


@SINK.asset(
    "form_tables",
    {"forms": "forms", "variables": "variables", "records": "records"},
    "One wide table per form (`form_<key>`): record meta columns, then one typed column per "
    "variable plus `<col>__raw` text for non-text variables. All forms of a study in one "
    "transaction; empty forms still get their table.",
)
def form_tables_asset(
    study: str, forms: LakeSlice, variables: LakeSlice, records: LakeSlice
) -> StudyWrite:
    relations: dict[str, pa.Table] = {}
    loads = tuple(_wide_load(p, _KEYED_ROWS) for p in _plan(forms, variables, records))
    return StudyWrite("form_tables", study, loads, relations, stale_prefix=sql.FORM_TABLE_PREFIX,
                      slices={"forms": forms, "variables": variables, "records": records},
                      keyed=_keyed("records"), keyed_source=_source(records, relations))


duckdb_assets: list[dg.AssetsDefinition] = SINK.assets([
    *entity_assets,
    forms_asset,
    variables_asset,
    records_long_asset,
    form_tables_asset,
])
