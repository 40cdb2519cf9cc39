"""The pure naming rules: OIDs deterministic, injective and free of markup; data types; the
characters XML 1.0 cannot hold."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from imednet_assets.defs.sinks.odm.oids import (
    XmlText,
    data_type,
    odm_datetime,
    odm_value,
    oid,
    xml_text,
)

KEYS = ["a.b", "a%2Eb", "a b", "a_b", "a-b", "a~b", "<&>\"'", "体重", "", "a.b.c", "a", "b.c"]


def test_oids_are_injective_deterministic_and_plain() -> None:
    pairs = [(x, y) for x in KEYS for y in KEYS]
    oids = [oid("I", x, y) for x, y in pairs]
    assert len(set(oids)) == len(pairs)  # ("a.b", "c") and ("a", "b.c") never meet
    assert oids == [oid("I", x, y) for x, y in pairs]
    assert all(c.isascii() and (c.isalnum() or c in "._-%") for o in oids for c in o)
    assert oid("F", "VS") == "F.VS" and oid("SE", 3) == "SE.3"
    assert oid("I", "VS", "体重") == "I.VS.%E4%BD%93%E9%87%8D"


def test_data_types_follow_the_variable_types() -> None:
    assert [data_type(t) for t in ("NUMBER", " number ", "DATE", "DATETIME", "CHECKBOX",
                                   "RADIO", "TEXT", None)] == [
        "float", "float", "date", "datetime", "boolean", "text", "text", "text"]


def test_characters_xml_cannot_hold_become_the_replacement_character_and_are_counted() -> None:
    text = XmlText()
    forbidden = "".join(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20),
                                  0xFFFE, 0xFFFF]))
    assert text(forbidden) == "\ufffd" * len(forbidden)
    assert text.replaced == len(forbidden)
    kept = "\t\n\r <&>\"' é 😀 \u2028 \ufffd \x7f \x85"
    assert text(kept) == kept and text.replaced == len(forbidden)
    assert xml_text(None) == "" and xml_text(12) == "12"
    etree.Element("x", V=text(forbidden + kept))  # lxml takes it


def test_datetimes_are_utc_iso() -> None:
    assert odm_datetime(dt.datetime(2024, 4, 9, 16, 40, 3, 500)) == "2024-04-09T16:40:03Z"


def test_values_are_the_api_text_but_datetimes_in_iso_form() -> None:
    assert odm_value("2024-04-09 16:40:03", "datetime") == "2024-04-09T16:40:03"
    assert odm_value("2024-04-09 16:40:03.5", "datetime") == "2024-04-09T16:40:03.5"
    for kept in ("2024-04-09", "2024-04-09 16:40", "ND", " 2024-04-09 16:40:03", "",
                 "٢٠٢٤-04-09 16:40:03"):  # ASCII digits only
        assert odm_value(kept, "datetime") == kept
    assert odm_value("2024-04-09 16:40:03", "text") == "2024-04-09 16:40:03"
    assert odm_value("NaN", "float") == "NaN"
