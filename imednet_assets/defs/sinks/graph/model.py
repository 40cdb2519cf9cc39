"""One study's lake slices as graph rows: node property maps and relationship key lists, in batches.

Small entities (study, sites, forms, variables, subjects, visits) are read whole; records are
streamed batch by batch from the lake (records' data never sit in memory all at once), and the
relationship passes over records read only their key columns.
Soft-deleted records, subjects, visits and variables (`deleted = true`) are left out, so the
replay's stale sweep removes them from the graph, as the issue asks ("gone or deleted upstream").
Record-data keys the dictionary does not declare still get a `Variable` node (`in_dictionary:
false`), so the safe-name mapping of every property is kept in one place.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.graph import cypher as c
from imednet_assets.defs.sinks.graph.properties import (
    ROW_HASH,
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
#: The node spec of each lake entity.
SPEC_OF: dict[str, c.NodeSpec] = {ENTITY_OF[spec.label]: spec for spec in c.NODES}
#: Entities whose changed rows an incremental apply merges by key; a change of any other input
#: (the study, sites, forms, the dictionary) rewrites the study's graph.
KEYED_ENTITIES: tuple[str, ...] = ("records", "subjects", "visits")
_RECORD_KEYS = ["record_id", "subject_key", "visit_id", "form_key", "parent_record_id", "deleted"]
_NO_PROPS = frozenset({"record_data"})
#: What names a row of each entity in an error message.
_ROW_ID = {"studies": "study_key", "sites": "site_id", "forms": "form_key",
           "variables": "variable_name", "subjects": "subject_key", "visits": "visit_id",
           "records": "record_id"}


def node_key(study_key: str, *values: Any) -> str:
    """A node's `node_key`: `["<study>", key values...]` as compact JSON (unambiguous)."""
    return orjson.dumps([study_key, *values]).decode()


@dataclass(frozen=True)
class NodeBatch:
    """Node rows as lists of values in the order of `columns` (always node_key, row_hash first)."""

    columns: tuple[str, ...]
    rows: list[list[Any]]


def node_batch(props: list[dict[str, Any]]) -> NodeBatch:
    """Property maps as a `NodeBatch`: a property a node lacks is null there (left unset)."""
    names = {k for p in props for k in p} - {c.NODE_KEY, ROW_HASH}
    columns = (c.NODE_KEY, ROW_HASH, *sorted(names))
    return NodeBatch(columns, [[p.get(k) for k in columns] for p in props])


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

    @cached_property
    def undeclared(self) -> list[tuple[str, str]]:
        """(form_key, key) of every record-data key of live records the dictionary lacks."""
        seen: set[tuple[str, str]] = set()
        for batch in self._live_record_arrays(["form_key", "record_data"]):
            data = _entries(batch.column("record_data"))
            forms = pc.take(batch.column("form_key"), pc.list_parent_indices(data))
            pairs = pa.table({"f": forms, "k": pc.list_flatten(data).field("key")})
            distinct = pairs.group_by(["f", "k"], use_threads=False).aggregate([])
            seen.update(zip(distinct["f"].to_pylist(), distinct["k"].to_pylist(), strict=True))
        declared = set(self.variable_types)
        return sorted(p for p in seen if p not in declared and p[0] is not None)

    def _key(self, spec: c.NodeSpec, props: Mapping[str, Any]) -> str:
        return node_key(self.study_key, *(props[k] for k in spec.keys))

    def _study_node(self) -> dict:
        rows = self._rows("studies")
        props = entity_props(rows[-1]) if rows else {}
        return {**props, c.STUDY_KEY: self.study_key}

    def _variable_nodes(self) -> list[dict]:
        """The dictionary's variables, then the keys it lacks (name and safe name only)."""
        nodes = [{**entity_props(row), "property_name": property_name(row["variable_name"]),
                  "in_dictionary": True} for row in self.dictionary]
        nodes += [{c.STUDY_KEY: self.study_key, "form_key": form, "variable_name": key,
                   "property_name": property_name(key), "in_dictionary": False}
                  for form, key in self.undeclared]
        return nodes

    def record_node(self, row: dict) -> dict:
        """Envelope properties, then each recordData answer typed and safely named."""
        props = entity_props(row, _NO_PROPS)
        form = row.get("form_key")
        for key, text in row.get("record_data") or ():
            value = data_value(text, self.variable_types.get((form, key)))
            if value is not None:
                props[property_name(key)] = value
        return props

    def _live_record_arrays(
        self, columns: list[str] | None, size: int = 10_000, where: pc.Expression | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The study's live records (those matching `where`), batch by batch, as Arrow (only
        `columns`)."""
        lake = self.slices["records"]
        if not lake.files:
            return
        read = None if columns is None else sorted({*columns, "deleted"})
        for batch in lake.dataset().to_batches(columns=read, batch_size=size, filter=where):
            live = batch.filter(pc.invert(pc.fill_null(batch.column("deleted"), False)))
            if live.num_rows:
                yield live

    def _record_batches(self, columns: list[str] | None, size: int) -> Iterator[list[dict]]:
        for batch in self._live_record_arrays(columns, size):
            yield batch.to_pylist()

    def _with_key(self, spec: c.NodeSpec, props: dict[str, Any]) -> dict[str, Any]:
        props[c.NODE_KEY] = self._key(spec, props)
        return with_hash(props)

    def nodes(self, spec: c.NodeSpec, size: int) -> Iterator[NodeBatch]:
        """Batches of the study's `spec` nodes: every property, `node_key` and `row_hash`."""
        if spec == c.RECORD:
            for rows in self._record_batches(None, size):
                yield node_batch([self._with_key(spec, self.record_node(r)) for r in rows])
            return
        for chunk in _chunks(self._small_nodes(spec), size):
            yield node_batch(chunk)

    def _small_nodes(self, spec: c.NodeSpec) -> list[dict[str, Any]]:
        """Every `spec` node of the study but records (the small entities, read whole)."""
        build = {
            "Study": lambda: [self._study_node()],
            "Site": lambda: [entity_props(r) for r in self.sites],
            "Form": lambda: [entity_props(r) for r in self.forms],
            "Variable": self._variable_nodes,
            "Subject": lambda: [entity_props(r) for r in self.subjects],
            "Visit": lambda: [entity_props(r) for r in self.visits],
        }[spec.label]
        return [self._with_key(spec, p) for p in build()]

    # -- checks -----------------------------------------------------------------------------

    def nul_location(self, changed: Mapping[str, Collection[Any]] | None = None) -> str | None:
        """Where the first NUL character sits in a string the graph would get (live rows only),
        e.g. "record 7, variable 'note'", or None. Vectorised: one Arrow pass per slice.
        With `changed` (entity -> changed ids) only those rows are looked at: the others were
        written before, so they hold none."""
        for entity, lake in self.slices.items():
            if not lake.files or (changed is not None and entity not in changed):
                continue
            where = None if changed is None else self._id_filter(entity, changed[entity])
            for batch in lake.dataset().to_batches(batch_size=10_000, filter=where):
                if "deleted" in batch.schema.names:
                    batch = batch.filter(pc.invert(pc.fill_null(batch.column("deleted"), False)))
                found = _nul_in_batch(entity, batch)
                if found:
                    return found
        return None

    # -- incremental apply ------------------------------------------------------------------

    def id_column(self, entity: str) -> str:
        """The column the lake's change log names `entity`'s rows by (`record_id`, ...)."""
        manifest = self.slices[entity].manifest
        if manifest is None:  # the plan rewrites such a slice: nothing names its changes
            raise ValueError(f"the {entity} slice of study {self.study_key} has no change log")
        return manifest.key_column

    def _id_filter(self, entity: str, ids: Collection[Any]) -> pc.Expression:
        column = self.id_column(entity)
        lake = self.slices[entity]
        return pc.field(column).isin(pa.array(sorted(ids), lake.schema.field(column).type))

    def changed_node_keys(self, entity: str, ids: Collection[Any]) -> set[str]:
        """`node_key`s of the lake rows with these ids, deleted ones too (their node goes)."""
        spec = SPEC_OF[entity]
        lake = self.slices[entity]
        if not lake.files or not ids:
            return set()
        table = lake.dataset().to_table(columns=list(spec.keys),
                                        filter=self._id_filter(entity, ids))
        keys = zip(*(table.column(k).to_pylist() for k in spec.keys), strict=True)
        return {node_key(self.study_key, *values) for values in keys if None not in values}

    def undeclared_keys(self) -> set[str]:
        """`node_key`s of the Variable nodes for record-data keys the dictionary lacks."""
        return {node_key(self.study_key, form, key) for form, key in self.undeclared}

    def nodes_among(
        self, spec: c.NodeSpec, keys: Collection[str], size: int
    ) -> Iterator[NodeBatch]:
        """Batches of the study's `spec` nodes whose `node_key` is one of `keys` (those the
        source still gives, live: the others are to be deleted)."""
        wanted = set(keys)
        if spec == c.RECORD:
            ids = pa.array(sorted(orjson.loads(k)[1] for k in wanted),
                           self.slices["records"].schema.field("record_id").type)
            where = pc.field("record_id").isin(ids)
            for batch in self._live_record_arrays(None, size, where):
                yield node_batch([self._with_key(spec, self.record_node(r))
                                  for r in batch.to_pylist()])
            return
        mine = [p for p in self._small_nodes(spec) if p[c.NODE_KEY] in wanted]
        for chunk in _chunks(mine, size):
            yield node_batch(chunk)

    def rels_at(self, spec: c.RelSpec, touched: Mapping[str, Collection[str]],
                size: int) -> Iterator[list[list[str]]]:
        """Batches of the study's `spec` relationships with an end among the `touched` node
        keys (label -> keys): every relationship a changed node has now."""
        sources = set(touched.get(spec.source.label, ()))
        targets = set(touched.get(spec.target.label, ()))
        if not sources and not targets:
            return
        pairs = [p for batch in self.rels(spec, size) for p in batch
                 if p[0] in sources or p[1] in targets]
        yield from _chunks(pairs, size)

    # -- relationships ----------------------------------------------------------------------

    def rels(self, spec: c.RelSpec, size: int) -> Iterator[list[list[str]]]:
        """Batches of [source node_key, target node_key] of the study's `spec`."""
        n = len(spec.source.keys)
        for batch in self._rel_keys(spec, size):
            yield [[node_key(self.study_key, *keys[:n]), node_key(self.study_key, *keys[n:])]
                   for keys in batch]

    def _rel_keys(self, spec: c.RelSpec, size: int) -> Iterator[list[list]]:
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
            ] + [[form, form, key] for form, key in self.undeclared],
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


def _entries(data: pa.MapArray) -> pa.ListArray:
    """A map column as list<struct<key, value>> (Arrow's list kernels take no maps)."""
    return data.cast(pa.list_(pa.struct([data.type.key_field, data.type.item_field])))


def _first_nul(values: pa.Array) -> int | None:
    hits = pc.match_substring(values, "\x00")
    index = pc.index(pc.fill_null(hits, False), True).as_py()
    return None if index < 0 else index


def _nul_in_batch(entity: str, batch: pa.RecordBatch) -> str | None:
    """The first NUL of one lake batch: top-level strings, and record-data keys and answers
    (nested values travel as JSON text, where a NUL is escaped, so they are safe)."""
    row_id = _ROW_ID.get(entity)
    what = "record" if entity == "records" else f"{entity} row"

    def where(row: int, detail: str) -> str:
        ident = batch.column(row_id)[row].as_py() if row_id in batch.schema.names else row
        return f"{what} {ident!r}, {detail}"

    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            if (row := _first_nul(column)) is not None:
                return where(row, f"column {name!r}")
        elif pa.types.is_map(column.type):
            entries = _entries(column)
            parents = pc.list_parent_indices(entries)
            items = pc.list_flatten(entries)
            for part in ("key", "value"):
                if (i := _first_nul(items.field(part))) is not None:
                    key = items.field("key")[i].as_py()
                    return where(parents[i].as_py(), f"variable {key!r} ({part})")
    return None


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
