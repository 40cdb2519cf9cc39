"""Helpers for the ODM tests: a hostile study in real lake folders, a synthetic study of any size,
the ODM 1.3.2 schema (copied with its licence into `schema/`), and a reader that turns an ODM file
back into records with lxml, independent of the writer.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import LakeSlice, encode, study_dir
from imednet_assets.defs.sinks.odm.assets import odm_assets
from imednet_assets.defs.sinks.odm.definitions import odm_resources
from imednet_assets.defs.sinks.odm.io_manager import odm_path
from imednet_assets.defs.sinks.odm.source import ENTITIES
from imednet_assets_tests.defs.sinks.duckdb.conftest import (
    record,
    variable,
    write_lake,
    write_study,
)
from imednet_assets_tests.defs.sinks.runs import materialize_study

SCHEMA = Path(__file__).parent / "schema" / "ODM1-3-2.xsd"
NS = "{http://www.cdisc.org/ns/odm/v1.3}"
T0 = dt.datetime(2024, 4, 1, 9, 0, 0)
NEWEST = dt.datetime(2024, 6, 30, 23, 59, 59)

# names and values a careless writer gets wrong: markup, quotes, CDATA ends, the `.` and `%` of
# the OID encoding, control characters XML 1.0 forbids, whitespace an attribute would normalise
HOSTILE_NAME = 'odd "name" \'<&>.%2E'
DOTTED = "a.b"
ENCODED = "a%2Eb"  # must not share an OID with "a.b"
CONTROL = "ctl\x00\x01\x07\x0b\x0c\x1f\ufffe end"
VALUES = {
    "markup": "<b>&amp;</b> ]]> <!-- x --> <?pi?>",
    "quotes": "\"double\" 'single' `back`",
    "whitespace": " lead\ttab\nnew\r\nline  trail ",
    "unicode": "体重 😀 ﷽ \u202eRTL\u2028",
    "control": CONTROL,
    "big": "é" * 20_000 + "<&>",
}


def xml_ok(text: str) -> str:
    """The test's own statement of the rule: characters XML 1.0 cannot hold become U+FFFD."""
    def ok(c: str) -> bool:
        o = ord(c)
        return (o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD
                or 0x10000 <= o <= 0x10FFFF)
    return "".join(c if ok(c) else "\ufffd" for c in text)


def hostile_study(lake: Path, study: str = "A") -> None:
    """Two subjects, hostile names and values, a deleted record, a record without revisions, a
    revision of a record the records slice no longer holds, users and reasons with markup."""
    variables = [
        variable(1, "VS", "sysbp", "NUMBER", "Systolic <BP> & \"more\""),
        variable(2, "VS", "vsdt", "DATE", "Visit date"),
        variable(3, "VS", "vstm", "DATETIME", "Visit time"),
        variable(4, "VS", "smoker", "CHECKBOX", "Smoker?\x01"),
        variable(5, "VS", HOSTILE_NAME, "MEMO", "Notes"),
        variable(6, "VS", "体重", "NUMBER", "Weight"),
        variable(7, "VS", DOTTED, "TEXT", "dotted"),
        variable(8, "VS", ENCODED, "TEXT", "encoded"),
        variable(9, "VS", "ctl\x02name", "TEXT", ""),
        variable(20, "=e.vil&", "ans", "TEXT", "Answer"),
        variable(21, "=e.vil&", "big", "MEMO", "Big"),
    ]
    records = [
        record(1, "VS", {"sysbp": "-5", "vsdt": "2024-04-09", "vstm": "2024-04-09 16:40:03",
                         "smoker": "true", HOSTILE_NAME: VALUES["markup"], "体重": "72.5",
                         DOTTED: VALUES["quotes"], ENCODED: VALUES["whitespace"],
                         "ctl\x02name": VALUES["control"]},
               date_modified=T0, date_created=T0, subject_key="S<&>'1\""),
        record(2, "VS", {"sysbp": "ND", "vsdt": None, "smoker": "", HOSTILE_NAME: VALUES["unicode"],
                         "unknown_key": "not a variable"},
               date_modified=NEWEST, date_created=T0, subject_key="S-2"),
        record(3, "VS", {"sysbp": "120"}, deleted=True, date_modified=T0, subject_key="S-2"),
        record(4, "=e.vil&", {"ans": "=HYPERLINK(\"http://x\",\"y\")", "big": VALUES["big"]},
               parent_record_id=1, subject_key="S-2", visit_id=None, interval_id=None),
        record(5, "=e.vil&", {"ans": "no revisions"}, subject_key="S<&>'1\""),
    ]
    write_study(lake, study, ["VS", "=e.vil&", "EMPTY"], variables, records)
    at = [T0 + dt.timedelta(hours=h) for h in range(8)]
    revisions = [
        revision(10, 1, 1, at[0], user="jane <&> \"doe\"", reason=None),
        revision(11, 1, 2, at[1], user="jane <&> \"doe\"", reason="typo: <b> & \x07 fixed"),
        revision(12, 1, 3, at[2], user="bob", reason="status to complete"),
        revision(13, 2, 1, at[3], user="bob"),
        revision(14, 3, 1, at[4], user=None),
        revision(15, 3, 2, at[5], user="bob", deleted=True, reason="entered in error"),
        revision(16, 4, 1, at[6], user="bob", site_id=None),
        revision(17, 99, 1, at[7], user="gone", form_key="VS", subject_key="S-9", site_id=None),
    ]
    write_lake(lake, "record_revisions", study, revisions)


def revision(revision_id: int, record_id: int, number: int, when: dt.datetime, *,
             user: str | None, reason: str | None = None, deleted: bool = False,
             **extra: Any) -> dict:
    return {"record_revision_id": revision_id, "record_id": record_id,
            "record_revision": number, "data_revision": number, "user": user, "role": "CRC",
            "reason_for_change": reason, "deleted": deleted, "date_created": when,
            "site_id": 101, **extra}


def synthetic_study(lake: Path, study: str, records: int, *, revisions_per_record: int = 2,
                    forms: int = 4, variables_per_form: int = 8) -> None:
    """A study of `records` records (each with every variable of its form answered) and
    `revisions_per_record` revisions each, written straight to the lake with Arrow."""
    names = [f"v{j}" for j in range(variables_per_form)]
    form_keys = [f"F{i}" for i in range(forms)]
    write_study(lake, study, form_keys,
                [variable(i * 100 + j, f, n, "NUMBER" if j % 2 else "TEXT")
                 for i, f in enumerate(form_keys) for j, n in enumerate(names)], [])
    ids = np.arange(1, records + 1, dtype=np.int64)
    schema = SCHEMAS["records"]
    folder = study_dir(lake, "records", study)
    for i, form in enumerate(form_keys):
        rid = ids[ids % forms == i]
        n = len(rid)
        keys = pa.array(np.tile(np.array(names, dtype=object), n), pa.string())
        values = pa.array(np.char.add(np.repeat(rid.astype(str), variables_per_form),
                                      np.tile(np.array([f"-{x}" for x in names]), n)).astype(
            object), pa.string())
        offsets = pa.array(np.arange(0, (n + 1) * variables_per_form, variables_per_form,
                                     dtype=np.int32))
        columns = {
            "study_key": pa.array([study] * n, pa.string()),
            "interval_id": pa.array(rid % 5, pa.int64()),
            "form_key": pa.array([form] * n, pa.string()),
            "site_id": pa.array(rid % 7, pa.int64()),
            "record_id": pa.array(rid),
            "deleted": pa.array(np.zeros(n, dtype=bool)),
            "date_modified": pa.array([T0] * n, pa.timestamp("ms")),
            "subject_key": pa.array((rid // 50).astype(str).astype(object), pa.string()),
            "visit_id": pa.array(rid // 50 * 10 + rid % 5, pa.int64()),
            "record_data": pa.MapArray.from_arrays(offsets, keys, values),
        }
        table = pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type))
                          for f in schema}, schema=schema)
        sub = folder / f"form_key={encode(form)}"
        sub.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, sub / "part-00000.parquet")
    rev_ids = np.repeat(ids, revisions_per_record)
    number = np.tile(np.arange(1, revisions_per_record + 1), records)
    n = len(rev_ids)
    columns = {
        "study_key": pa.array([study] * n, pa.string()),
        "record_revision_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "record_id": pa.array(rev_ids),
        "record_revision": pa.array(number.astype(np.int64)),
        "user": pa.array(np.char.add("user", (rev_ids % 13).astype(str)).astype(object),
                         pa.string()),
        "site_id": pa.array(rev_ids % 7, pa.int64()),
        "deleted": pa.array(np.zeros(n, dtype=bool)),
        "date_created": pa.array([T0] * n, pa.timestamp("ms")),
    }
    schema = SCHEMAS["record_revisions"]
    folder = study_dir(lake, "record_revisions", study)
    for old in folder.glob("*.parquet"):
        old.unlink()
    pq.write_table(pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in schema},
                            schema=schema), folder / "part-00000.parquet")


def slices(lake: Path, study: str) -> dict[str, LakeSlice]:
    return {e: LakeSlice.read(lake, e, study, SCHEMAS[e]) for e in ENTITIES}


@functools.cache
def odm_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def validate(path: Path) -> None:
    """Raises with lxml's message when `path` does not validate against ODM1-3-2.xsd."""
    odm_schema().assertValid(etree.parse(str(path)))


#: reference attribute -> the element that defines the OID
REFERENCES = {"StudyEventOID": "StudyEventDef", "FormOID": "FormDef",
              "ItemGroupOID": "ItemGroupDef", "ItemOID": "ItemDef", "UserOID": "User",
              "LocationOID": "Location"}


def check_references(path: Path) -> None:
    """Every OID the file refers to is defined in it once (the schema does not check this)."""
    root = etree.parse(str(path)).getroot()
    for attribute, definer in REFERENCES.items():
        defined = [d.get("OID") for d in root.iter(f"{NS}{definer}")]
        assert len(defined) == len(set(defined)), f"{definer} OIDs repeat"
        used = {e.get(attribute) for e in root.iter() if e.get(attribute) is not None}
        assert used <= set(defined), f"{attribute} undefined: {sorted(used - set(defined))}"


@dataclass
class FormRead:
    """One FormData of an ODM file, read back."""

    subject_key: str
    event_oid: str
    visit: str | None
    form_key: str
    record_id: str
    transaction: str | None
    values: dict[str, str] | None  # variable name -> Value; None: no ItemGroupData
    audit: dict[str, str | None] | None = None


@dataclass
class OdmRead:
    root: dict[str, str]
    forms: list[FormRead] = field(default_factory=list)
    users: dict[str, str | None] = field(default_factory=dict)  # User OID -> LoginName
    locations: dict[str, str] = field(default_factory=dict)  # Location OID -> Name


def read_odm(path: Path) -> OdmRead:
    """The file's FormData with names resolved through its own MetaDataVersion."""
    doc = etree.parse(str(path))
    root = doc.getroot()
    out = OdmRead(dict(root.attrib))
    group_names = {g.get("OID"): g.get("Name") for g in root.iter(f"{NS}ItemGroupDef")}
    groups = {f.get("OID"): group_names[f.find(f"{NS}ItemGroupRef").get("ItemGroupOID")]
              for f in root.iter(f"{NS}FormDef")}
    items = {i.get("OID"): i.get("Name") for i in root.iter(f"{NS}ItemDef")}
    for user in root.iter(f"{NS}User"):
        login = user.find(f"{NS}LoginName")
        out.users[user.get("OID")] = None if login is None else login.text or ""
    out.locations = {loc.get("OID"): loc.get("Name") for loc in root.iter(f"{NS}Location")}
    for subject in root.iter(f"{NS}SubjectData"):
        for event in subject.iter(f"{NS}StudyEventData"):
            for form in event.iter(f"{NS}FormData"):
                group = form.find(f"{NS}ItemGroupData")
                values = None if group is None else {
                    items[i.get("ItemOID")]: i.get("Value") for i in group.iter(f"{NS}ItemData")}
                read = FormRead(subject.get("SubjectKey"), event.get("StudyEventOID"),
                                event.get("StudyEventRepeatKey"),
                                groups[form.get("FormOID")],
                                form.get("FormRepeatKey"), form.get("TransactionType"), values)
                audit = form.find(f"{NS}AuditRecord")
                if audit is not None:
                    def text(tag: str, a: etree._Element = audit) -> str | None:
                        node = a.find(f"{NS}{tag}")
                        return None if node is None else node.text or ""
                    read.audit = {
                        "user": audit.find(f"{NS}UserRef").get("UserOID"),
                        "location": audit.find(f"{NS}LocationRef").get("LocationOID"),
                        "when": text("DateTimeStamp"), "reason": text("ReasonForChange"),
                        "source": text("SourceID")}
                out.forms.append(read)
    return out


def lake_records(lake: Path, study: str) -> dict[int, dict[str, Any]]:
    """The lake's records by id, read with pyarrow (not the writer's DuckDB)."""
    files = sorted(study_dir(lake, "records", study).rglob("*.parquet"))
    return {r["record_id"]: r for f in files for r in pq.read_table(f).to_pylist()}


def form_variables(lake: Path, study: str) -> dict[str, dict[str, str | None]]:
    """Form key -> variable name -> variable type, as the lake holds them."""
    table = pq.read_table(study_dir(lake, "variables", study))
    out: dict[str, dict[str, str | None]] = defaultdict(dict)
    for row in table.to_pylist():
        out[row["form_key"]].setdefault(row["variable_name"], row["variable_type"])
    return out


def expected_values(data: list[tuple[str, str | None]],
                    types: dict[str, str | None]) -> dict[str, str]:
    """What a record's current values must read back as: its form's variables, nulls left out,
    names and values with the characters XML cannot hold replaced, DATETIME answers written
    `YYYY-MM-DDTHH:MM:SS` (ISO 8601, as ODM's datetime wants)."""
    def value(v: str, vtype: str | None) -> str:
        if (vtype or "").upper() == "DATETIME" and re.fullmatch(r"[\d-]{10} [\d:]{8}", v):
            return v.replace(" ", "T")
        return v
    return {xml_ok(k): xml_ok(value(v, types[k])) for k, v in data
            if k in types and v is not None}


class Odm:
    """A lake folder + ODM root + Dagster instance, and a way to run the ODM assets."""

    def __init__(self, tmp_path: Path) -> None:
        self.lake = tmp_path / "lake"
        self.root = tmp_path / "odm"
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, study: str, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return materialize_study(
            self.instance, study, odm_assets,
            {"lake_io_manager": LakeIOManager(root=str(self.lake)),
             **odm_resources(str(self.root))},
            raise_on_error=raise_on_error)

    def path(self, study: str, kind: str) -> Path:
        return odm_path(self.root, study, kind)


@pytest.fixture
def odm(tmp_path: Path) -> Odm:
    return Odm(tmp_path)


def check_odm(lake: Path, study: str, snapshot: Path, transactional: Path) -> None:
    """Both files valid and self-contained; the snapshot equals the lake's live records value for
    value; the transactional file has one AuditRecord per lake revision."""
    for path in (snapshot, transactional):
        validate(path)
        check_references(path)
    variables = form_variables(lake, study)
    expected = {
        str(r["record_id"]): (xml_ok(r["subject_key"]), r["form_key"],
                              None if r["visit_id"] is None else str(r["visit_id"]),
                              expected_values(r["record_data"] or [], variables[r["form_key"]]))
        for r in lake_records(lake, study).values() if not r["deleted"]}
    got = {f.record_id: (f.subject_key, f.form_key, f.visit, f.values or {})
           for f in read_odm(snapshot).forms}
    assert got == expected
    revisions = pq.read_table(study_dir(lake, "record_revisions", study),
                              columns=["record_revision_id"]).column(0).to_pylist()
    audits = [f.audit["source"] for f in read_odm(transactional).forms if f.audit]
    assert sorted(audits) == sorted(f"recordRevisionId {r}" for r in revisions)
