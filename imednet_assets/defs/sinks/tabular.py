"""A study's analysis tables, shaped once for every tabular destination (Snowflake, SQL, files).

The tables are the DuckDB sink's: `subjects`, `visits`, `records_long`, the dictionary (`forms`
with `table_name`, `variables` with column names and types) and one wide typed table per form.
They are computed from the study's lake files by an in-memory DuckDB with the DuckDB sink's own
SQL, so every destination agrees with DuckDB row for row, and handed out as Arrow record batch
streams: nothing is materialised in Python and memory stays bounded by the batch size.

Nested columns (keywords, extra) become JSON text, which every destination can hold.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import pyarrow as pa

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.duckdb import naming, sql
from imednet_assets.defs.sinks.duckdb.naming import FormTable

#: Lake entities a `StudyTables` reads; every one is needed (an empty slice is fine).
ENTITIES = ("subjects", "visits", "forms", "variables", "records")

TableKind = Literal["entity", "dictionary", "long", "form"]

_FORMS_MAP = "_imednet_forms_map"
_VARIABLES_MAP = "_imednet_variables_map"
# where each variable lands in its form's wide table (the dictionary's naming columns)
_VARIABLE_NAMES = ["column_name", "raw_column_name", "column_type"]


@dataclass(frozen=True)
class TableSpec:
    """One table of the study: its destination name, kind, and (form tables) its naming plan."""

    name: str
    kind: TableKind
    form: FormTable | None = None


class StudyTables:
    """The analysis tables of one study over its lake slices; use as a context manager.

    `max_identifier_length` is the destination's limit for table and column names in bytes
    (PostgreSQL: 63); longer names are shortened deterministically and the dictionary tables
    (`forms.table_name`, `variables.column_name`, `variables.raw_column_name`) say which is which.
    """

    def __init__(
        self,
        study_key: str,
        slices: Mapping[str, LakeSlice],
        *,
        max_identifier_length: int | None = None,
        threads: int = 2,
    ) -> None:
        missing = [e for e in ENTITIES if e not in slices]
        if missing:
            raise ValueError(f"StudyTables needs the lake slices of {', '.join(missing)}")
        for entity, lake in slices.items():
            if lake.study_key != study_key:
                raise ValueError(
                    f"lake slice of {entity} is for study {lake.study_key}, not {study_key}"
                )
        self.study_key = study_key
        self._slices = slices
        self._con = duckdb.connect(":memory:", config={"threads": threads})
        self._sources = {entity: self._source(lake) for entity, lake in slices.items()}
        self.plan = naming.plan_form_tables(
            slices["forms"].distinct("form_key"),
            slices["variables"].columns(list(naming.DICTIONARY_COLUMNS)),
            slices["records"].distinct("form_key"),
            max_length=max_identifier_length,
        )
        forms_map, variables_map = naming.mapping_tables(self.plan)
        self._con.register(_FORMS_MAP, forms_map)
        self._con.register(_VARIABLES_MAP, variables_map)
        self._only_key: str | None = None

    def only_keys(self, key: str, keys: Collection[Any]) -> None:
        """Narrow every later select of rows (not the dictionary) to those whose `key` column is
        one of `keys`: what an incremental apply inserts after deleting the changed keys."""
        self._con.register(sql.CHANGED_KEYS, pa.table({"key": sorted(keys)}))
        self._only_key = key

    def __enter__(self) -> StudyTables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def _source(self, lake: LakeSlice) -> str:
        if lake.files:
            return sql.read_parquet_sql(lake.files)
        name = f"_imednet_empty_{lake.entity}"
        self._con.register(name, lake.schema.empty_table())
        return sql.quote_ident(name)

    def specs(self) -> list[TableSpec]:
        """Every table of the study: entities, dictionary, long table, then the form tables."""
        return [
            TableSpec("subjects", "entity"),
            TableSpec("visits", "entity"),
            TableSpec("forms", "dictionary"),
            TableSpec("variables", "dictionary"),
            TableSpec("records_long", "long"),
            *(TableSpec(p.table_name, "form", p) for p in self.plan),
        ]

    def select_sql(self, spec: TableSpec, text_columns: Iterable[str] = ()) -> str:
        """The SELECT giving `spec`'s rows; `text_columns` of a form table come as raw text (the
        destination widened them to text after a type clash between studies)."""
        select = self._select_sql(spec, text_columns)
        if self._only_key is not None and spec.kind != "dictionary":
            select = sql.only_keys_sql(select, self._only_key)
        return select

    def _select_sql(self, spec: TableSpec, text_columns: Iterable[str]) -> str:
        if spec.kind == "entity":
            return _flat_select(self._sources[spec.name], self._slices[spec.name].schema)
        if spec.name == "forms":
            select = sql.with_mapping_sql(
                self._sources["forms"], _FORMS_MAP, ["form_key"], ["table_name"]
            )
            return _flat_select(f"({select})", self._slices["forms"].schema, ["table_name"])
        if spec.name == "variables":
            select = sql.with_mapping_sql(
                self._sources["variables"],
                _VARIABLES_MAP,
                ["form_key", "variable_name"],
                _VARIABLE_NAMES,
            )
            return _flat_select(f"({select})", self._slices["variables"].schema, _VARIABLE_NAMES)
        if spec.kind == "long":
            return sql.long_select_sql(self._sources["records"], _VARIABLES_MAP)
        assert spec.form is not None
        return sql.wide_select_sql(
            self._sources["records"], spec.form.form_key, spec.form.columns, text_columns
        )

    def read(
        self, spec: TableSpec, *, text_columns: Iterable[str] = (), batch_rows: int = 65_536
    ) -> pa.RecordBatchReader:
        """`spec`'s rows as a stream of Arrow batches (read it before asking for the next table)."""
        return self._con.sql(self.select_sql(spec, text_columns)).to_arrow_reader(batch_rows)

    def schema(self, spec: TableSpec, *, text_columns: Iterable[str] = ()) -> pa.Schema:
        """The Arrow schema of `spec` without reading its rows."""
        return self._con.sql(self.select_sql(spec, text_columns)).limit(0).to_arrow_table().schema

    def batches(
        self, spec: TableSpec, *, text_columns: Iterable[str] = (), batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        yield from self.read(spec, text_columns=text_columns, batch_rows=batch_rows)


def _flat_select(source: str, schema: pa.Schema, added: Iterable[str] = ()) -> str:
    """The lake columns of `source` (nested ones: lists, structs, maps as JSON text), then the
    `added` columns a mapping join put after them."""
    parts = []
    for f in schema:
        col = sql.quote_ident(f.name)
        nested = pa.types.is_nested(f.type)
        parts.append(f"CAST(to_json({col}) AS VARCHAR) AS {col}" if nested else col)
    parts += [sql.quote_ident(c) for c in added]
    return f"SELECT {', '.join(parts)} FROM {source}"
