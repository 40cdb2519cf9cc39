"""Lake rows -> documents, without a server: envelopes, embedded visits, safe names, hashes."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import lake_schema
from imednet_assets.defs.sinks.mongodb.documents import (
    content_hash,
    original_field_name,
    rebatch,
    record_documents,
    safe_field_name,
    subject_documents,
)

HOSTILE = ["$where", "a.b", "cost$usd", "lab.value.mg", "100%", "%2E", "$", ".", "..",
           "nul\x00byte", "patient weight", 'say "hi"', "it's", "select", "体重", "", "$.%"]


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_names_are_storable_and_reversible(name: str) -> None:
    safe = safe_field_name(name)
    assert not safe.startswith("$") and "." not in safe and "\x00" not in safe
    assert original_field_name(safe) == name


def test_safe_names_keep_ordinary_names_and_never_collide() -> None:
    assert [safe_field_name(n) for n in ("AETERM", "cost$usd", "patient weight", "体重")] == [
        "AETERM", "cost$usd", "patient weight", "体重"]
    assert safe_field_name("$where") == "%24where"
    assert safe_field_name("a.b") == "a%2Eb"
    assert safe_field_name("%2E") == "%252E"
    assert len({safe_field_name(n) for n in HOSTILE}) == len(HOSTILE)


def _lake_table(entity: str, rows: list[dict]) -> pa.Table:
    """Rows as the lake returns them (timestamps in ms)."""
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[entity])
    return table.cast(lake_schema(SCHEMAS[entity]))


def test_record_envelope_is_the_seed_envelope_plus_the_rest_of_the_record() -> None:
    table = _lake_table("records", [{
        "study_key": "ST/1", "record_id": 1234, "subject_id": 99, "subject_key": "101-004",
        "visit_id": 42, "form_id": 7, "form_key": "BASELINE", "record_status": "Complete",
        "deleted": False, "date_created": datetime(2024, 1, 1, 8), "interval_id": 3,
        "date_modified": datetime(2024, 1, 15, 12, 0, 5), "site_id": 5, "parent_record_id": 0,
        "keywords": [{"keyword_name": "k", "keyword_key": "K", "keyword_id": 1,
                      "date_added": datetime(2024, 2, 3, 4, 5, 6)}],
        "record_data": [("var1", "value1"), ("a.b", "x"), ("$set", None), ("big", "y" * 100_000)],
    }])
    [doc] = record_documents(table)
    assert list(doc)[:13] == ["_id", "study_key", "record_id", "subject_id", "subject_key",
                              "visit_id", "form_id", "form_key", "record_status", "deleted",
                              "date_created", "date_modified", "record_data"]
    assert doc == {
        "_id": "ST/1/1234", "study_key": "ST/1", "record_id": 1234, "subject_id": 99,
        "subject_key": "101-004", "visit_id": 42, "form_id": 7, "form_key": "BASELINE",
        "record_status": "Complete", "deleted": False, "date_created": "2024-01-01T08:00:00Z",
        "date_modified": "2024-01-15T12:00:05Z",
        "record_data": {"var1": "value1", "a%2Eb": "x", "%24set": None, "big": "y" * 100_000},
        "interval_id": 3, "site_id": 5, "parent_record_id": 0, "record_oid": None,
        "record_type": None, "subject_oid": None,
        "keywords": [{"keyword_name": "k", "keyword_key": "K", "keyword_id": 1,
                      "date_added": "2024-02-03T04:05:06Z"}],
        "extra": None,
        "renamed_fields": {"a%2Eb": "a.b", "%24set": "$set"},
    }


def test_subjects_embed_their_own_visits_in_visit_order() -> None:
    subjects = _lake_table("subjects", [
        {"study_key": "S", "subject_id": 1, "subject_key": "101-001",
         "enrollment_start_date": datetime(2024, 3, 1)},
        {"study_key": "S", "subject_id": 2, "subject_key": "101-002"},
    ])
    visits = _lake_table("visits", [
        {"study_key": "S", "visit_id": 12, "subject_key": "101-001",
         "visit_date": date(2024, 3, 9)},
        {"study_key": "S", "visit_id": 11, "subject_key": "101-001"},
        {"study_key": "S", "visit_id": 13, "subject_key": "999-999"},
    ])
    one, two = subject_documents(subjects, visits)
    assert one["_id"] == "S/101-001" and two["_id"] == "S/101-002"
    assert one["enrollment_start_date"] == "2024-03-01T00:00:00Z"
    assert [v["visit_id"] for v in one["visits"]] == [11, 12]
    assert one["visits"][1]["visit_date"] == "2024-03-09"
    assert "study_key" not in one["visits"][0]
    assert two["visits"] == []


def test_content_hash_ignores_export_time_and_key_order_but_sees_every_value() -> None:
    doc = {"_id": "S/1", "record_data": {"a": "1", "b": "2"}, "exported_at": "2025-01-01"}
    same = {"record_data": {"b": "2", "a": "1"}, "_id": "S/1", "exported_at": "2030-01-01"}
    assert content_hash(doc) == content_hash(same)
    assert content_hash(doc) != content_hash({**doc, "record_data": {"a": "1", "b": "3"}})
    assert content_hash(doc) != content_hash({**doc, "record_data": {"a": "1"}})


def test_rebatch_cuts_exact_sizes() -> None:
    chunks = [[{"i": i} for i in range(n)] for n in (3, 0, 7, 1)]
    assert [len(b) for b in rebatch(chunks, 4)] == [4, 4, 3]
