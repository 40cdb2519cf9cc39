"""The ODM 1.3.2 writers: a Snapshot (current values) and a Transactional file (one AuditRecord per
record revision), streamed with `lxml.etree.xmlfile`.

Only the open ancestors (ODM, ClinicalData, the current SubjectData and StudyEventData) are held
as open tags; each record's FormData is built as a small tree and written at once (the
transactional file holds one record's few revisions until its values come), so memory does not
grow with the records. The metadata (Study, AdminData) is built whole: it grows with forms,
variables, sites and users, not with records. Every text and attribute value from the lake is
made fit for XML 1.0 (`oids.XmlText`, record values per Arrow batch by `oids.xml_map`); OIDs are
plain ASCII by construction; lxml escapes `<`, `&`, quotes, tabs and line breaks.

Layout: Study (GlobalVariables, MetaDataVersion: Protocol, StudyEventDef per interval, FormDef,
ItemGroupDef (one per form) and ItemDef per variable), AdminData (a User per revision author, a
Location per site), ClinicalData: SubjectData per subject (SiteRef of its first record) ->
StudyEventData per visit (StudyEventRepeatKey: the visit id) -> FormData per record
(FormRepeatKey: the record id) -> ItemGroupData -> ItemData per answered variable of the form
(Value: the API's text exactly, but a datetime item's space made a `T`; a null answer is no
ItemData).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from lxml import etree

from imednet_assets.defs.sinks.odm.oids import XmlText, odm_datetime, odm_value, oid, xml_map
from imednet_assets.defs.sinks.odm.source import Dictionary, Form, OdmSource

OdmKind = Literal["snapshot", "transactional"]
NAMESPACE = "http://www.cdisc.org/ns/odm/v1.3"
MDV_OID = "MDV.1"
EPOCH = dt.datetime(1970, 1, 1)
SOURCE_SYSTEM = "iMednet EDC (through the imednet-assets Parquet lake)"


@dataclass
class OdmStats:
    """What a writer wrote."""

    subjects: int = 0
    forms: int = 0  # FormData elements
    items: int = 0  # ItemData elements
    audit_records: int = 0
    skipped_values: int = 0  # record_data keys that are no variable of the record's form
    replaced_characters: int = 0  # characters XML 1.0 cannot hold, written as U+FFFD


class _Writer:
    """One ODM file being written: the open tags, the dictionary, the counters."""

    def __init__(self, xf: Any, kind: OdmKind, dictionary: Dictionary) -> None:
        self.xf = xf
        self.kind = kind
        self.d = dictionary
        self.text = XmlText()
        self.stats = OdmStats()
        # the current record's revisions (transaction, FormData), written once its values came
        self.held: list[tuple[str, etree._Element]] = []
        self.held_record: tuple = ()

    # -- metadata --------------------------------------------------------------------------

    def element(self, parent: etree._Element | None, tag: str, text: str | None = None,
                **attrs: str) -> etree._Element:
        """A (sub)element with its attributes and text made fit for XML."""
        clean = {k: self.text(v) for k, v in attrs.items()}
        node = etree.Element(tag, clean) if parent is None else etree.SubElement(parent, tag,
                                                                                  clean)
        if text is not None:
            node.text = self.text(text)
        return node

    def translated(self, parent: etree._Element, tag: str, text: str) -> None:
        """`<tag><TranslatedText>text</TranslatedText></tag>` (Question, Description)."""
        etree.SubElement(self.element(parent, tag), "TranslatedText").text = self.text(text)

    def study(self) -> etree._Element:
        """Study: GlobalVariables and the one MetaDataVersion (events, forms, groups, items)."""
        d = self.d
        study = self.element(None, "Study", OID=d.study_oid)
        glob = self.element(study, "GlobalVariables")
        self.element(glob, "StudyName", d.study_name)
        self.element(glob, "StudyDescription", d.description)
        self.element(glob, "ProtocolName", d.study_key)
        mdv = self.element(study, "MetaDataVersion", OID=MDV_OID,
                           Name=f"iMednet metadata of {d.study_key}")
        protocol = self.element(mdv, "Protocol")
        for n, event in enumerate(d.events, 1):
            self.element(protocol, "StudyEventRef", StudyEventOID=event.oid,
                         OrderNumber=str(n), Mandatory="No")
        for event in d.events:
            node = self.element(mdv, "StudyEventDef", OID=event.oid, Name=event.name,
                                Repeating="Yes",
                                Type="Scheduled" if event.interval_id is not None
                                else "Unscheduled")
            for n, form_oid in enumerate(event.form_oids, 1):
                self.element(node, "FormRef", FormOID=form_oid, OrderNumber=str(n),
                             Mandatory="No")
        for form in d.forms.values():
            node = self.element(mdv, "FormDef", OID=form.oid, Name=form.name, Repeating="Yes")
            self.element(node, "ItemGroupRef", ItemGroupOID=form.group_oid, Mandatory="No")
        for form in d.forms.values():
            node = self.element(mdv, "ItemGroupDef", OID=form.group_oid,
                                Name=form.key or form.name, Repeating="No")
            for item in form.items.values():
                self.element(node, "ItemRef", ItemOID=item.oid, OrderNumber=str(item.order),
                             Mandatory="No")
        for form in d.forms.values():
            for item in form.items.values():
                node = self.element(mdv, "ItemDef", OID=item.oid, Name=item.name,
                                    DataType=item.data_type)
                if item.label:
                    self.translated(node, "Question", item.label)
        return study

    def admin(self) -> etree._Element:
        """AdminData: a User per revision author, a Location per site (AuditRecord and SiteRef
        refer to them)."""
        d = self.d
        admin = self.element(None, "AdminData", StudyOID=d.study_oid)
        for user, user_oid in d.users.items():
            node = self.element(admin, "User", OID=user_oid)
            if user:
                self.element(node, "LoginName", user)
        effective = (d.effective or (d.newest or EPOCH).date()).isoformat()
        for location_oid, name in d.locations.values():
            node = self.element(admin, "Location", OID=location_oid, Name=name,
                                LocationType="Site")
            self.element(node, "MetaDataVersionRef", StudyOID=d.study_oid,
                         MetaDataVersionOID=MDV_OID, EffectiveDate=effective)
        return admin

    # -- clinical data ---------------------------------------------------------------------

    def items(self, parent: etree._Element, form: Form, data: Iterable[tuple[str, Any]],
              transaction: str | None) -> None:
        """ItemData of the answered variables of `form`, in the ItemGroupDef's order."""
        values = []
        for key, value in data or ():
            item = form.items.get(key)
            if item is None:  # housekeeping keys (dateCreated, unvnum...), unknown variables
                self.stats.skipped_values += 1
            elif value is not None:
                values.append((item.order, item.oid, odm_value(value, item.data_type)))
        # the hot loop: OIDs are plain ASCII and values were made fit for XML per batch
        # (`_rows`), so lxml gets them as they are
        sub = etree.SubElement
        if transaction:
            for _, item_oid, value in sorted(values):
                sub(parent, "ItemData", {"ItemOID": item_oid, "Value": value,
                                         "TransactionType": transaction})
        else:
            for _, item_oid, value in sorted(values):
                sub(parent, "ItemData", {"ItemOID": item_oid, "Value": value})
        self.stats.items += len(values)

    def form_data(self, row: Mapping[str, Any], transaction: str | None,
                  values: Iterable[tuple[str, Any]] | None) -> etree._Element:
        """One record's FormData (with its AuditRecord in a transactional file); `values`: the
        record's data, or None for a FormData without ItemGroupData."""
        # OIDs, numbers and transaction types are plain ASCII: straight to lxml (the hot path)
        form = self.d.forms[row["form_key"]]
        attrs = {"FormOID": form.oid}
        if row["record_id"] is not None:
            attrs["FormRepeatKey"] = str(row["record_id"])
        if transaction:
            attrs["TransactionType"] = transaction
        node = etree.Element("FormData", attrs)
        if self.kind == "transactional" and row["part"] == 1:
            self.audit(node, row)
        if values is not None:
            group_attrs = {"ItemGroupOID": form.group_oid}
            if transaction:
                group_attrs["TransactionType"] = transaction
            group = etree.SubElement(node, "ItemGroupData", group_attrs)
            self.items(group, form, values,
                       "Upsert" if transaction == "Update" else transaction)
        self.stats.forms += 1
        return node

    def audit(self, parent: etree._Element, row: Mapping[str, Any]) -> None:
        """Who (UserRef), where (LocationRef), when, why, and which revision (SourceID)."""
        sub = etree.SubElement
        record = sub(parent, "AuditRecord")
        sub(record, "UserRef", {"UserOID": self.d.user_oid(row["user_name"])})
        sub(record, "LocationRef", {"LocationOID": self.d.location_oid(row["site_id"])})
        when = row["date_created"] or self.d.newest or EPOCH
        sub(record, "DateTimeStamp").text = odm_datetime(when)
        if row["reason_for_change"]:
            sub(record, "ReasonForChange").text = self.text(row["reason_for_change"])
        if row["record_revision_id"] is not None:
            sub(record, "SourceID").text = f"recordRevisionId {row['record_revision_id']}"
        self.stats.audit_records += 1

    def clinical(self, batches: Iterable[pa.RecordBatch]) -> None:
        """SubjectData and StudyEventData opened and closed as the sorted rows move on."""
        context = {"TransactionType": "Context"} if self.kind == "transactional" else {}
        subject_key: object = object()
        event_key: object = object()
        subject = contextlib.ExitStack()
        event = contextlib.ExitStack()
        try:
            for row in _rows(batches, self.text):
                record = (row["subject_key"], row["interval_id"], row["visit_id"],
                          row["form_key"], row["record_id"])
                if self.held and self.held_record != record:
                    self.flush(None)  # a record the lake no longer holds: revisions only
                if row["subject_key"] != subject_key:
                    event.close()
                    subject.close()
                    subject_key, event_key = row["subject_key"], object()
                    subject.enter_context(self.xf.element(
                        "SubjectData", SubjectKey=self.text(subject_key), **context))
                    self.xf.write(self.element(
                        None, "SiteRef", LocationOID=self.d.location_oid(row["site_id"])))
                    self.stats.subjects += 1
                if (row["interval_id"], row["visit_id"]) != event_key:
                    event.close()
                    event_key = (row["interval_id"], row["visit_id"])
                    attrs = {"StudyEventOID": self.d.event_oid(row["interval_id"]), **context}
                    if row["visit_id"] is not None:
                        attrs["StudyEventRepeatKey"] = str(row["visit_id"])
                    event.enter_context(self.xf.element("StudyEventData", **attrs))
                if self.kind == "snapshot":
                    self.xf.write(self.form_data(row, None, row["record_data"]))
                elif row["part"] == 1:
                    self.revision(row, record)
                elif self.held:
                    self.flush(row)
                else:  # a record the lake holds no revision of: its state as it is
                    removed = row["removed"]
                    self.xf.write(self.form_data(row, "Remove" if removed else "Upsert",
                                                 None if removed else row["record_data"]))
            if self.held:
                self.flush(None)
        finally:
            event.close()
            subject.close()

    def revision(self, row: Mapping[str, Any], record: tuple) -> None:
        """Hold one revision of the current record: Insert first, Update after, Remove for a
        deletion (values come with the record's row, see `flush`)."""
        n = len(self.held) + 1
        transaction = "Remove" if row["removed"] else "Insert" if n == 1 else "Update"
        self.held.append((transaction, self.form_data(row, transaction, None)))
        self.held_record = record

    def flush(self, current: Mapping[str, Any] | None) -> None:
        """Write the held revisions; the `current` record's values go on the last revision
        that is not a deletion."""
        live = [(t, node) for t, node in self.held if t != "Remove"]
        if current is not None and live:
            transaction, node = live[-1]
            form = self.d.forms[current["form_key"]]
            group = etree.SubElement(node, "ItemGroupData", {"ItemGroupOID": form.group_oid,
                                                             "TransactionType": transaction})
            self.items(group, form, current["record_data"],
                       "Upsert" if transaction == "Update" else transaction)
        for _, node in self.held:
            self.xf.write(node)
        self.held = []


def _rows(batches: Iterable[pa.RecordBatch], text: XmlText) -> Iterator[dict[str, Any]]:
    """Rows as dicts, one Arrow batch converted at a time, the record data made fit for XML
    (counted in `text`)."""
    for batch in batches:
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["record_data"], replaced = xml_map(columns["record_data"])
        text.replaced += replaced
        columns = {name: column.to_pylist() for name, column in columns.items()}
        for i in range(batch.num_rows):
            yield {name: values[i] for name, values in columns.items()}


def write_odm(path: Path, source: OdmSource, kind: OdmKind) -> OdmStats:
    """Write the study's ODM file of `kind` to `path`; deterministic for the same lake."""
    dictionary = source.dictionary()
    created = odm_datetime(dictionary.newest or EPOCH)
    with path.open("wb") as out, etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        writer = _Writer(xf, kind, dictionary)
        root = {
            "FileType": "Snapshot" if kind == "snapshot" else "Transactional",
            "Granularity": "All",
            "FileOID": oid("ODM", dictionary.study_key, kind),
            "CreationDateTime": created,
            "AsOfDateTime": created,
            "ODMVersion": "1.3.2",
            "Originator": "imednet-assets",
            "SourceSystem": SOURCE_SYSTEM,
            "Description": f"{kind} of study {writer.text(dictionary.study_key)}",
        }
        with xf.element("ODM", root, nsmap={None: NAMESPACE}):
            xf.write(writer.study())
            xf.write(writer.admin())
            with xf.element("ClinicalData", StudyOID=dictionary.study_oid,
                            MetaDataVersionOID=MDV_OID):
                writer.clinical(source.snapshot_rows() if kind == "snapshot"
                                else source.transactional_rows())
    writer.stats.replaced_characters = writer.text.replaced
    return writer.stats
