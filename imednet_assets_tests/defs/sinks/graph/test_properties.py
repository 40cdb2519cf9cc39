"""Safe property names and property values from lake values."""

import datetime as dt

import pytest

from imednet_assets.defs.sinks.graph.properties import (
    data_value,
    entity_props,
    plain_value,
    property_name,
    with_hash,
)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("weight", "weight"),
        ("dateCreated", "dateCreated"),
        ("select", "select"),
        ("patient weight", "patient_weight_980ec92d"),
        ("cost$usd", "cost_usd_9cbcbdda"),
        ("lab.value", "lab_value_7a39cdf8"),
        ("体重", "v_3193595c"),
        ("1st", "v_1st_efc920c5"),
        # the record's own properties and the writer's stamps are never overwritten by data
        ("record_id", "record_id_5cb1f4d1"),
        ("load_id", "load_id_296e0b3d"),
    ],
)
def test_property_names(key: str, name: str) -> None:
    # `<folded>_<first 8 hex of sha1(key)>`: depends on the key alone, so stable across studies
    assert property_name(key) == name


def test_property_names_stay_distinct_for_keys_that_fold_alike() -> None:
    assert property_name("a b") != property_name("a.b") != property_name("a$b")


@pytest.mark.parametrize(
    ("text", "vtype", "value"),
    [
        ("128", "NUMBER", 128),
        ("-7", "number", -7),
        ("37.2", "NUMBER", 37.2),
        ("1e3", "NUMBER", 1000.0),
        ("ND", "NUMBER", "ND"),
        ("nan", "NUMBER", "nan"),
        ("", "NUMBER", ""),
        ("99999999999999999999", "NUMBER", 1e20),
        ("true", "CHECKBOX", True),
        ("False", "CHECKBOX", False),
        ("maybe", "CHECKBOX", "maybe"),
        ("2024-04-09", "DATE", "2024-04-09"),
        ("2024-04-09 16:40:03", "DATETIME", "2024-04-09T16:40:03"),
        ("2024-02-30 16:40:03", "DATETIME", "2024-02-30 16:40:03"),
        ("128", "TEXT", "128"),
        ("128", None, "128"),
        ('["a", "b"]', "CHECKBOX", ["a", "b"]),
        ("[1, 2.5]", "TEXT", [1.0, 2.5]),
        ("[1, 2]", "TEXT", [1, 2]),
        ('[1, "a"]', "TEXT", '[1, "a"]'),  # mixed lists are not property values: text kept
        ('[{"a": 1}]', "TEXT", '[{"a": 1}]'),  # nested values stay JSON text
        ('{"a": {"b": 1}}', "TEXT", '{"a": {"b": 1}}'),
        ("[]", "TEXT", "[]"),
        ("[not json", "TEXT", "[not json"),
        (None, "TEXT", None),
    ],
)
def test_data_values(text, vtype, value) -> None:
    assert data_value(text, vtype) == value
    assert type(data_value(text, vtype)) is type(value)


def test_plain_values() -> None:
    assert plain_value(dt.datetime(2024, 4, 9, 16, 40, 3)) == "2024-04-09T16:40:03"
    assert plain_value(dt.date(2024, 4, 9)) == "2024-04-09"
    assert plain_value([]) is None
    assert plain_value([{"sequence": 1, "comment": "?"}]) == '[{"comment":"?","sequence":1}]'
    assert plain_value(float("inf")) == "inf"


def test_entity_props_drop_nulls_and_skipped_columns() -> None:
    row = {"study_key": "S", "site_id": 1, "site_name": None, "extra": None, "keywords": []}
    assert entity_props(row) == {"study_key": "S", "site_id": 1}
    assert entity_props(row, frozenset({"site_id"})) == {"study_key": "S"}


def test_row_hash_depends_on_content_only() -> None:
    a = with_hash({"x": 1, "y": "a"})
    b = with_hash({"y": "a", "x": 1})
    c = with_hash({"x": 1, "y": "b"})
    assert a["row_hash"] == b["row_hash"] != c["row_hash"]
