"""One study's lake slices as graph rows: node property maps and relationship key lists, in batches.

Small entities (study, sites, forms, variables, subjects, visits) are read whole; records are
streamed batch by batch from the lake (records' data never sit in memory all at once), and the
relationship passes over records read only their key columns.
Soft-deleted records, subjects, visits and variables (`deleted = true`) are left out, so the
replay's stale sweep removes them from the graph, as the issue asks ("gone or deleted upstream").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

import pyarrow as pa

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.graph import cypher as c
from imednet_assets.defs.sinks.graph.properties import (
    data_value,
    entity_props,
    property_name,
    with_hash,
)

#: Lake entity read for each node label.
ENTITY_OF: dict[str, str] = {
    "Study": "studies", "Site": "sites", "Form": "forms", "Variable": "variables",
    "Subject": "subjects", "Visit": "visits", "Record": "records",
}  # fmt: skip
ENTITIES: tuple[str, ...] = tuple(ENTITY_OF.values())
_RECORD_KEYS = ["record_id", "subject_key", "visit_id", "form_key", "parent_record_id", "deleted"]
_NO_PROPS = frozenset({"record_data"})


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _live(rows: list[dict]) -> list[dict]:
    return [r for r in rows if not r.get("deleted")]


def _unique(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """One row per key (the last wins) and none with a null key: MERGE keys cannot be null."""
    by_key: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row.get(k) for k in keys)
        if None not in key:
            by_key[key] = row
    return list(by_key.values())


class StudyGraph:
    """The graph of one study, derived from its lake slices (keyed by entity name)."""

    def __init__(self, study_key: str, slices: Mapping[str, LakeSlice]) -> None:
        self.study_key = study_key
        self.slices = slices

    def _table(self, entity: str, columns: list[str] | None = None) -> pa.Table:
        lake = self.slices[entity]
        if not lake.files:
            table = lake.schema.empty_table()
            return table.select(columns) if columns else table
        return lake.dataset().to_table(columns=columns)

    def _rows(self, entity: str) -> list[dict]:
        return self._table(entity).to_pylist()

    @cached_property
    def dictionary(self) -> list[dict]:
        return _unique(_live(self._rows("variables")), ("form_key", "variable_name"))

    @cached_property
    def variable_types(self) -> dict[tuple[str, str], str | None]:
        return {(v["form_key"], v["variable_name"]): v["variable_type"] for v in self.dictionary}

    @cached_property
    def subjects(self) -> list[dict]:
        return _unique(_live(self._rows("subjects")), ("subject_key",))

    @cached_property
    def visits(self) -> list[dict]:
        return _unique(_live(self._rows("visits")), ("visit_id",))

    @cached_property
    def sites(self) -> list[dict]:
        return _unique(self._rows("sites"), ("site_id",))

    @cached_property
    def forms(self) -> list[dict]:
        return _unique(self._rows("forms"), ("form_key",))

    # -- nodes ------------------------------------------------------------------------------

    def _study_node(self) -> dict:
        rows = self._rows("studies")
        props = entity_props(rows[-1]) if rows else {}
        return {**props, c.STUDY_KEY: self.study_key}

    def _variable_node(self, row: dict) -> dict:
        return {**entity_props(row), "property_name": property_name(row["variable_name"])}

    def record_node(self, row: dict) -> dict:
        """Envelope properties, then each recordData answer typed and safely named."""
        props = entity_props(row, _NO_PROPS)
        form = row.get("form_key")
        for key, text in row.get("record_data") or ():
            value = data_value(text, self.variable_types.get((form, key)))
            if value is not None:
                props[property_name(key)] = value
        return props

    def _record_batches(self, columns: list[str] | None, size: int) -> Iterator[list[dict]]:
        lake = self.slices["records"]
        if not lake.files:
            return
        for batch in lake.dataset().to_batches(columns=columns, batch_size=size):
            rows = [r for r in batch.to_pylist() if not r.get("deleted")]
            if rows:
                yield rows

    def nodes(self, spec: c.NodeSpec, size: int) -> Iterator[list[dict]]:
        """Batches of full property maps (with `row_hash`) of the study's `spec` nodes."""
        if spec == c.RECORD:
            for rows in self._record_batches(None, size):
                yield [with_hash(self.record_node(r)) for r in rows]
            return
        build = {
            "Study": lambda: [self._study_node()],
            "Site": lambda: [entity_props(r) for r in self.sites],
            "Form": lambda: [entity_props(r) for r in self.forms],
            "Variable": lambda: [self._variable_node(r) for r in self.dictionary],
            "Subject": lambda: [entity_props(r) for r in self.subjects],
            "Visit": lambda: [entity_props(r) for r in self.visits],
        }[spec.label]
        yield from _chunks([with_hash(p) for p in build()], size)

    # -- relationships ----------------------------------------------------------------------

    def rels(self, spec: c.RelSpec, size: int) -> Iterator[list[list]]:
        """Batches of [source key values..., target key values...] of the study's `spec`."""
        if spec.target == c.RECORD or spec.source == c.RECORD:
            for rows in self._record_batches(_RECORD_KEYS, size):
                pairs = [p for r in rows if (p := _record_rel(spec, r)) is not None]
                if pairs:
                    yield pairs
            return
        pairs: list[list] = {
            "HAS_SITE": lambda: [[s["site_id"]] for s in self.sites],
            "HAS_FORM": lambda: [[f["form_key"]] for f in self.forms],
            "HAS_VARIABLE": lambda: [
                [v["form_key"], v["form_key"], v["variable_name"]] for v in self.dictionary
            ],
            "HAS_SUBJECT": lambda: [[s["subject_key"]] for s in self.subjects],
            "ENROLLED_AT": lambda: [
                [s["subject_key"], s["site_id"]] for s in self.subjects if s["site_id"] is not None
            ],
            "HAS_VISIT": lambda: [
                [v["subject_key"], v["visit_id"]]
                for v in self.visits
                if v["subject_key"] is not None
            ],
        }[spec.type]()
        yield from _chunks(pairs, size)


def _record_rel(spec: c.RelSpec, row: dict) -> list | None:
    """The key list of `spec` for one record, or None when the record has no such relationship
    (visit 0 = outside any visit; parent 0 = no parent)."""
    if spec == c.VISIT_HAS_RECORD:
        return [row["visit_id"], row["record_id"]] if row["visit_id"] else None
    if spec == c.SUBJECT_HAS_RECORD:
        has_subject = not row["visit_id"] and row["subject_key"] is not None
        return [row["subject_key"], row["record_id"]] if has_subject else None
    if spec == c.INSTANCE_OF:
        return [row["record_id"], row["form_key"]] if row["form_key"] is not None else None
    if spec == c.CHILD_OF:
        parent = row["parent_record_id"]
        return [row["record_id"], parent] if parent else None
    raise ValueError(f"{spec.name} is not a relationship of records")
