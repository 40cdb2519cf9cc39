"""What an ODM file is made from: a study's lake slices read by an in-memory DuckDB.

The dictionary (study, intervals, forms, variables, sites, users) is small and read whole; the
records and revisions are streamed as Arrow batches in the order the XML nests them (subject,
visit, form, record, revision). DuckDB sorts under a memory limit and spills to a temporary
folder, so a study of any size is written in bounded memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.duckdb.sql import quote_ident, quote_literal, read_parquet_sql
from imednet_assets.defs.sinks.odm.oids import data_type, oid

#: Lake entities an ODM file is made from.
ENTITIES = ("studies", "sites", "intervals", "forms", "variables", "records", "record_revisions")

# A record with no subject key still needs one (ODM requires it): its subject id, else a marker.
_SUBJECT = ("COALESCE(NULLIF({t}.subject_key, ''), '(subject id ' || {t}.subject_id || ')', "
            "'(no subject key)')")
_ORDER = "subject_key, visit_id NULLS FIRST, interval_id NULLS FIRST, form_key, record_id"

#: The current values of every live record, in nesting order.
SNAPSHOT_SQL = f"""
SELECT {_SUBJECT.format(t='r')} AS subject_key, r.site_id, r.interval_id, r.visit_id,
       r.form_key, r.record_id, r.record_data
FROM records r
WHERE NOT COALESCE(r.deleted, false)
ORDER BY {_ORDER}
"""

#: Every record revision in nesting order, oldest first (`part` 1), then the record's current
#: values as a row of their own (`part` 2); the writer holds a record's few revisions until then
#: and puts the values on the last one that is not a deletion (the API keeps no earlier values).
#: No window and no aggregate, and only the revisions are joined (with the records' narrow keys):
#: a plain external sort that DuckDB spills, so a million records fit a small memory limit.
TRANSACTIONAL_SQL = f"""
WITH keys AS (
    SELECT record_id, subject_key, subject_id, site_id, interval_id, visit_id, form_key
    FROM records
)
SELECT CASE WHEN r.record_id IS NULL THEN {_SUBJECT.format(t='v')}
            ELSE {_SUBJECT.format(t='r')} END AS subject_key,
       COALESCE(v.site_id, r.site_id) AS site_id,  -- where the revision was made
       CASE WHEN r.record_id IS NULL THEN v.interval_id ELSE r.interval_id END AS interval_id,
       r.visit_id,
       CASE WHEN r.record_id IS NULL THEN v.form_key ELSE r.form_key END AS form_key,
       v.record_id, 1 AS part, v.record_revision, v.record_revision_id, v."user" AS user_name,
       v.reason_for_change, COALESCE(v.deleted, false) AS removed, v.date_created,
       NULL::MAP(VARCHAR, VARCHAR) AS record_data
FROM record_revisions v LEFT JOIN keys r ON r.record_id = v.record_id
UNION ALL
SELECT {_SUBJECT.format(t='r')}, r.site_id, r.interval_id, r.visit_id, r.form_key, r.record_id,
       2, NULL, NULL, NULL, NULL, COALESCE(r.deleted, false), NULL, r.record_data
FROM records r
ORDER BY {_ORDER}, part, record_revision NULLS FIRST, date_created NULLS FIRST,
         record_revision_id
"""


@dataclass(frozen=True)
class Item:
    """One variable of a form as an ODM ItemDef."""

    oid: str
    name: str
    data_type: str
    label: str | None
    order: int


@dataclass(frozen=True)
class Form:
    """One form: its FormDef, its one ItemGroupDef and its ItemDefs (by variable name)."""

    key: str
    oid: str
    group_oid: str
    name: str
    items: Mapping[str, Item]


@dataclass(frozen=True)
class Event:
    """One interval (or the records without one) as a StudyEventDef."""

    interval_id: int | None
    oid: str
    name: str
    form_oids: tuple[str, ...]


@dataclass
class Dictionary:
    """Everything of the study but its records: MetaDataVersion and AdminData content."""

    study_key: str
    study_name: str
    description: str
    events: list[Event]
    forms: dict[str | None, Form]
    users: dict[str, str]  # user name -> User OID
    locations: dict[int | None, tuple[str, str]]  # site id -> (Location OID, name)
    newest: dt.datetime | None  # the newest change in the lake data (CreationDateTime)
    effective: dt.date | None  # the study's creation date (Location's MetaDataVersionRef)
    event_oids: dict[int | None, str] = field(default_factory=dict)

    @property
    def study_oid(self) -> str:
        return oid("S", self.study_key)

    def event_oid(self, interval_id: int | None) -> str:
        return self.event_oids[interval_id]

    def location_oid(self, site_id: int | None) -> str:
        return self.locations[site_id][0]

    def user_oid(self, user: str | None) -> str:
        return self.users[user or ""]


class OdmSource:
    """A study's lake slices opened for the ODM writers; use as a context manager.

    `memory_limit` bounds DuckDB's sort (it spills to `spill_dir`); `batch_rows` is the size of
    the Arrow batches streamed to the writer.
    """

    def __init__(self, study_key: str, slices: Mapping[str, LakeSlice], *,
                 spill_dir: Path | None = None, memory_limit: str = "128MB",
                 batch_rows: int = 10_000, threads: int = 1) -> None:
        missing = [e for e in ENTITIES if e not in slices]
        if missing:
            raise ValueError(f"the ODM export needs the lake slices of {', '.join(missing)}")
        self.study_key = study_key
        self.batch_rows = batch_rows
        self._con = duckdb.connect(":memory:", config={"threads": threads})
        self._con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
        if spill_dir is not None:
            self._con.execute(f"SET temp_directory = {quote_literal(str(spill_dir))}")
        for entity in ENTITIES:
            lake = slices[entity]
            if lake.files:
                self._con.execute(f"CREATE VIEW {quote_ident(entity)} AS SELECT * FROM "
                                  f"{read_parquet_sql(lake.files)}")
            else:  # an empty slice: its schema, no rows
                self._con.register(entity, lake.schema.empty_table())

    def __enter__(self) -> OdmSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        return self._con.sql(sql).to_arrow_table().to_pylist()

    def dictionary(self) -> Dictionary:
        """The study's metadata, with ItemDefs for every variable and a def for every form,
        interval, site and user the records and revisions name even when the metadata lacks it."""
        study = self._rows("SELECT study_name, study_description, date_created FROM studies "
                           "ORDER BY study_id NULLS LAST LIMIT 1")
        first = study[0] if study else {}
        forms = self._forms()
        events = self._events(forms)
        users = sorted(u for (u,) in self._con.sql(
            'SELECT DISTINCT COALESCE("user", \'\') FROM record_revisions').fetchall())
        sites = {r["site_id"]: r["site_name"] for r in self._rows(
            "SELECT site_id, site_name FROM sites ORDER BY site_id")}
        for (site,) in self._con.sql(
                "SELECT site_id FROM records UNION SELECT site_id FROM record_revisions "
                "UNION SELECT site_id FROM sites ORDER BY 1 NULLS FIRST").fetchall():
            sites.setdefault(site, None)
        created = first.get("date_created")
        return Dictionary(
            study_key=self.study_key,
            study_name=first.get("study_name") or self.study_key,
            description=first.get("study_description") or "",
            events=events,
            forms=forms,
            # no user or site: the bare prefix, which no key's OID can be
            users={u: oid("USR", u) if u else "USR" for u in users},
            locations={s: (oid("LOC", s), n or f"site {s}") if s is not None else ("LOC", "no site")
                       for s, n in sites.items()},
            newest=self._newest(),
            effective=created.date() if created else None,
            event_oids={e.interval_id: e.oid for e in events},
        )

    def _forms(self) -> dict[str | None, Form]:
        names = {r["form_key"]: r["form_name"] for r in self._rows(
            "SELECT form_key, form_name FROM forms ORDER BY form_id NULLS LAST, form_key")}
        keys = [k for (k,) in self._con.sql(
            "SELECT form_key FROM forms UNION SELECT form_key FROM variables UNION "
            "SELECT form_key FROM records UNION SELECT form_key FROM record_revisions "
            "ORDER BY 1 NULLS LAST").fetchall()]
        items: dict[str | None, dict[str, Item]] = {k: {} for k in keys}
        variables = self._rows(
            "SELECT form_key, variable_name, variable_type, label, sequence FROM variables "
            "WHERE form_key IS NOT NULL AND variable_name IS NOT NULL "
            "ORDER BY form_key, sequence NULLS LAST, variable_name, variable_id")
        for v in variables:
            found = items[v["form_key"]]
            if v["variable_name"] in found:  # the same name twice: the first one counts
                continue
            found[v["variable_name"]] = Item(
                oid=oid("I", v["form_key"], v["variable_name"]),
                name=v["variable_name"] or "(unnamed)",
                data_type=data_type(v["variable_type"]), label=v["label"],
                order=len(found) + 1)
        # no form key (a revision of a record the lake lost): the bare prefixes
        return {k: Form(key=k or "", oid=oid("F", k) if k is not None else "F",
                        group_oid=oid("IG", k) if k is not None else "IG",
                        name=names.get(k) or k or "(no form)", items=items[k])
                for k in keys}

    def _events(self, forms: Mapping[str | None, Form]) -> list[Event]:
        intervals = self._rows(
            "SELECT interval_id, interval_name, forms FROM intervals "
            "ORDER BY interval_sequence NULLS LAST, interval_id")
        events, seen = [], set()
        for i in intervals:
            if i["interval_id"] in seen:
                continue
            seen.add(i["interval_id"])
            scheduled = [f["form_key"] for f in i["forms"] or [] if f["form_key"] in forms]
            events.append(Event(i["interval_id"], oid("SE", i["interval_id"]),
                                i["interval_name"] or f"interval {i['interval_id']}",
                                tuple(dict.fromkeys(forms[k].oid for k in scheduled))))
        for (interval,) in self._con.sql(
                "SELECT interval_id FROM records UNION SELECT interval_id FROM record_revisions "
                "ORDER BY 1 NULLS FIRST").fetchall():
            if interval not in seen:
                seen.add(interval)
                name = f"interval {interval}" if interval is not None else "no interval"
                # no interval: the bare prefix, which no interval's OID can be
                events.append(Event(interval, oid("SE", interval) if interval is not None
                                    else "SE", name, ()))
        return events

    def _newest(self) -> dt.datetime | None:
        """The newest change the lake holds: records' and metadata's `date_modified`, revisions'
        `date_created` (taken from the data, not the clock: same lake, same bytes)."""
        parts = [f"SELECT max(date_modified) AS t FROM {e}"
                 for e in ("studies", "sites", "intervals", "forms", "variables", "records")]
        parts.append("SELECT max(date_created) FROM record_revisions")
        (newest,) = self._con.execute(
            f"SELECT max(t) FROM ({' UNION ALL '.join(parts)})").fetchall()[0]
        return newest

    def snapshot_rows(self) -> Iterator[pa.RecordBatch]:
        """The live records, with their current values, in nesting order."""
        yield from self._con.sql(SNAPSHOT_SQL).to_arrow_reader(self.batch_rows)

    def transactional_rows(self) -> Iterator[pa.RecordBatch]:
        """Every revision (and every record without one), in nesting order."""
        yield from self._con.sql(TRANSACTIONAL_SQL).to_arrow_reader(self.batch_rows)
