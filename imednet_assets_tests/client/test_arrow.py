"""JSON rows -> Arrow batches: every schema field, map values, extra column, bad values."""

from datetime import date, datetime

import pyarrow as pa
import pytest

from imednet_assets.client import SCHEMAS, ImednetMalformedResponse, page_to_batch
from imednet_assets.client.arrow import FIELDS

TS = "2024-04-10 07:12:48"
DT = datetime(2024, 4, 10, 7, 12, 48)
KEYWORD = {"keywordName": "Screen Failure Review", "keywordKey": "SFR", "keywordId": 88,
           "dateAdded": TS}  # fmt: skip

# one fully populated row per entity (imednet-api.md §5 shapes)
SAMPLES: dict[str, dict] = {
    "studies": {"sponsorKey": "SP", "studyKey": "CARDIO-01", "studyId": 100,
                "studyName": "Heart", "studyDescription": "d", "studyType": "STUDY",
                "dateCreated": TS, "dateModified": TS},
    "sites": {"studyKey": "CARDIO-01", "siteId": 101, "siteName": "Rochester",
              "siteEnrollmentStatus": "Enrollment Open", "dateCreated": TS, "dateModified": TS},
    "subjects": {"studyKey": "CARDIO-01", "subjectId": 5012, "subjectOid": "SUBJ-5012",
                 "subjectKey": "101-004", "subjectStatus": "Enrolled", "siteId": 101,
                 "siteName": "Rochester", "deleted": False, "enrollmentStartDate": TS,
                 "dateCreated": TS, "dateModified": TS, "keywords": [KEYWORD]},
    "intervals": {"studyKey": "CARDIO-01", "intervalId": 12, "intervalName": "Week 4",
                  "intervalDescription": "d", "intervalSequence": 4, "intervalGroupId": 1,
                  "intervalGroupName": "g", "timeline": "Start Date End Date",
                  "definedUsingInterval": "Baseline", "windowCalculationForm": "VIS",
                  "windowCalculationDate": "VISDT", "actualDateForm": "VIS", "actualDate": "VISDT",
                  "dueDateWillBeIn": 28, "negativeSlack": 3, "positiveSlack": 7,
                  "eproGracePeriod": 2, "forms": [{"formId": 2040, "formKey": "VS",
                                                   "formName": "Vital Signs"}],
                  "disabled": False, "dateCreated": TS, "dateModified": TS},
    "forms": {"studyKey": "CARDIO-01", "formId": 2040, "formKey": "VS", "formName": "Vital Signs",
              "formType": "Subject", "revision": 3, "embeddedLog": False, "enforceOwnership": True,
              "userAgreement": False, "subjectRecordReport": True, "unscheduledVisit": True,
              "otherForms": False, "eproForm": False, "allowCopy": True, "disabled": False,
              "dateCreated": TS, "dateModified": TS},
    "variables": {"studyKey": "CARDIO-01", "variableId": 30877, "variableType": "NUMBER",
                  "variableName": "sysbp", "sequence": 2, "revision": 3, "disabled": False,
                  "dateCreated": TS, "dateModified": TS, "formId": 2040, "variableOid": "VS.SYSBP",
                  "deleted": False, "formKey": "VS", "formName": "Vital Signs",
                  "label": "Systolic", "blinded": False},
    "visits": {"visitId": 90311, "studyKey": "CARDIO-01", "intervalId": 12,
               "intervalName": "Week 4",
               "subjectId": 5012, "subjectKey": "101-004", "startDate": "2024-04-01",
               "endDate": "2024-04-15", "dueDate": "2024-04-08", "visitDate": "2024-04-09",
               "visitDateForm": "Visit Information", "visitDateQuestion": "VISDT",
               "deleted": False, "dateCreated": TS, "dateModified": TS},
    "records": {"studyKey": "CARDIO-01", "intervalId": 12, "formId": 2040, "formKey": "VS",
                "siteId": 101, "recordId": 771204, "recordOid": "REC-771204",
                "recordType": "SUBJECT", "recordStatus": "Record Complete", "deleted": False,
                "dateCreated": TS, "dateModified": TS, "subjectId": 5012,
                "subjectOid": "SUBJ-5012", "subjectKey": "101-004", "visitId": 90311,
                "parentRecordId": 0, "keywords": [KEYWORD],
                "recordData": {"dateCreated": TS, "unvnum": "", "sysbp": "128"}},
    "record_revisions": {"studyKey": "CARDIO-01", "recordRevisionId": 1, "recordId": 771204,
                         "recordOid": "REC-1", "recordRevision": 2, "dataRevision": 1,
                         "recordStatus": "Record Complete", "subjectId": 5012,
                         "subjectOid": "SUBJ-5012", "subjectKey": "101-004", "siteId": 101,
                         "formKey": "VS", "intervalId": 12, "role": "CRC", "user": "jdoe",
                         "reasonForChange": "typo", "deleted": False, "dateCreated": TS},
    "queries": {"studyKey": "CARDIO-01", "subjectId": 5012, "subjectOid": "SUBJ-5012",
                "annotationType": "subject", "annotationId": 7, "type": "question",
                "description": "check", "recordId": 771204, "variable": "sysbp",
                "subjectKey": "101-004", "dateCreated": TS, "dateModified": TS,
                "queryComments": [{"sequence": 1, "annotationStatus": "Monitor Query Open",
                                   "user": "mon", "comment": "why?", "closed": False,
                                   "date": TS}]},
    "codings": {"studyKey": "CARDIO-01", "siteName": "Rochester", "siteId": 101, "subjectId": 5012,
                "subjectKey": "101-004", "formId": 2050, "formName": "AE", "formKey": "AE",
                "revision": 1, "recordId": 9, "variable": "AETERM", "value": "chest pain",
                "codingId": 3, "code": "Angina", "codedBy": "coder", "reason": "r",
                "dictionaryName": "MedDRA", "dictionaryVersion": "24.0", "dateCoded": TS},
    "users": {"userId": "u-1", "login": "jdoe", "firstName": "J", "lastName": "Doe",
              "email": "j@example.test", "userActiveInStudy": True,
              "roles": [{"dateCreated": [2024, 4, 10, 7, 12, 48, 123000000],
                         "dateModified": "2024-04-10 07:12:48", "roleId": "r-1",
                         "communityId": 100, "name": "CRC", "description": "d", "level": 1,
                         "type": "STUDY", "inactive": False}]},
}  # fmt: skip


def test_samples_cover_every_entity_and_field():
    assert set(SAMPLES) == set(SCHEMAS)
    for entity, fields in FIELDS.items():
        assert set(SAMPLES[entity]) == {f.api for f in fields}, entity


@pytest.mark.parametrize("entity", sorted(SCHEMAS))
def test_every_schema_field_is_filled(entity):
    batch = page_to_batch(entity, "CARDIO-01", [SAMPLES[entity]])
    assert batch.schema == SCHEMAS[entity]
    assert batch.schema.names[0] == "study_key" and batch.schema.names[-1] == "extra"
    row = batch.to_pylist()[0]
    assert row["study_key"] == "CARDIO-01"
    assert row["extra"] is None
    empty = [name for name, value in row.items() if value is None and name != "extra"]
    assert empty == []


def test_values_and_types_of_a_record():
    row = page_to_batch("records", "CARDIO-01", [SAMPLES["records"]]).to_pylist()[0]
    assert row["record_id"] == 771204 and row["form_key"] == "VS"
    assert row["date_modified"] == DT
    assert row["keywords"] == [{"keyword_name": "Screen Failure Review", "keyword_key": "SFR",
                                "keyword_id": 88, "date_added": DT}]  # fmt: skip
    assert row["record_data"] == [("dateCreated", TS), ("unvnum", ""), ("sysbp", "128")]
    assert SCHEMAS["records"].field("date_modified").type == pa.timestamp("s")
    assert SCHEMAS["records"].field("record_data").type == pa.map_(pa.string(), pa.string())


def test_visit_dates_are_date32_and_role_dates_timestamps():
    visit = page_to_batch("visits", "CARDIO-01", [SAMPLES["visits"]]).to_pylist()[0]
    assert visit["visit_date"] == date(2024, 4, 9) and visit["due_date"] == date(2024, 4, 8)
    assert SCHEMAS["visits"].field("visit_date").type == pa.date32()
    user = page_to_batch("users", "CARDIO-01", [SAMPLES["users"]]).to_pylist()[0]
    assert user["roles"][0]["date_created"] == DT and user["roles"][0]["date_modified"] == DT
    assert user["study_key"] == "CARDIO-01"  # users carry no studyKey: the requested one is used


def test_record_data_keeps_every_key_and_non_string_values_as_json():
    rec = dict(SAMPLES["records"], recordData={
        "n": 128, "f": 37.5, "b": True, "none": None, "blank": "", "obj": {"a": [1, "x"]},
        "dateModified": TS,
    })  # fmt: skip
    second = dict(SAMPLES["records"], recordId=2, recordData=None)
    rows = page_to_batch("records", "CARDIO-01", [rec, second]).to_pylist()
    assert rows[0]["record_data"] == [
        ("n", "128"), ("f", "37.5"), ("b", "true"), ("none", None), ("blank", ""),
        ("obj", '{"a":[1,"x"]}'), ("dateModified", TS),
    ]  # fmt: skip
    assert rows[1]["record_data"] is None


def test_unknown_fields_go_to_extra_as_sorted_json():
    site = dict(SAMPLES["sites"], zeta=1, alpha={"x": None})
    comment = dict(SAMPLES["queries"]["queryComments"][0], attachment="scan.pdf")
    query = dict(SAMPLES["queries"], queryComments=[comment])
    assert page_to_batch("sites", "CARDIO-01", [site]).column("extra").to_pylist() == [
        '{"alpha":{"x":null},"zeta":1}'
    ]
    extra = page_to_batch("queries", "CARDIO-01", [query]).column("extra")[0].as_py()
    assert '"attachment":"scan.pdf"' in extra and extra.startswith('{"queryComments":[{')


def test_missing_fields_and_blank_dates_are_null():
    row = page_to_batch("visits", "CARDIO-01", [{"visitId": 1, "dueDate": "", "dateCreated": ""}])
    got = row.to_pylist()[0]
    assert got["visit_id"] == 1 and got["study_key"] == "CARDIO-01"
    assert got["due_date"] is None and got["date_created"] is None and got["subject_key"] is None


def test_empty_page_gives_an_empty_batch_with_the_schema():
    for entity, schema in SCHEMAS.items():
        batch = page_to_batch(entity, "CARDIO-01", [])
        assert batch.num_rows == 0 and batch.schema == schema


@pytest.mark.parametrize(
    ("entity", "change", "message"),
    [
        ("records", {"dateModified": "2024-04-10T07:12:48Z"},
         "records for study CARDIO-01: field dateModified of row 1 is not a timestamp like "
         "%Y-%m-%d %H:%M:%S: '2024-04-10T07:12:48Z'"),
        ("records", {"recordId": "771204"},
         "records for study CARDIO-01: field recordId of row 1 is not an integer: '771204'"),
        ("visits", {"visitDate": "09/04/2024"},
         "visits for study CARDIO-01: field visitDate of row 1 is not a date like %Y-%m-%d: "
         "'09/04/2024'"),
        ("records", {"deleted": "false"},
         "records for study CARDIO-01: field deleted of row 1 is not a boolean: 'false'"),
        ("records", {"studyKey": "ONCO-02"},
         "records for study CARDIO-01: field studyKey of row 1 is not the requested study "
         "'CARDIO-01': 'ONCO-02'"),
        ("subjects", {"keywords": [dict(KEYWORD, dateAdded="yesterday")]},
         "subjects for study CARDIO-01: field keywords[].dateAdded of row 1 is not a timestamp "
         "like %Y-%m-%d %H:%M:%S: 'yesterday'"),
        ("record_revisions", {"recordId": 2**70},
         "recordRevisions for study CARDIO-01: field recordId of row 1 is not an integer: "
         "1180591620717411303424"),
    ],
)  # fmt: skip
def test_bad_values_raise_naming_entity_study_field_and_value(entity, change, message):
    good = SAMPLES[entity]
    with pytest.raises(ImednetMalformedResponse) as info:
        page_to_batch(entity, "CARDIO-01", [good, dict(good, **change)])
    assert str(info.value) == message
    assert info.value.study_key == "CARDIO-01"


def test_non_object_rows_and_unknown_entities_are_refused():
    with pytest.raises(ImednetMalformedResponse, match="field data of row 0 is not an object"):
        page_to_batch("sites", "S", ["oops"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown entity 'sitez'"):
        page_to_batch("sitez", "S", [])
