"""The naming and splitting rules: deterministic, within each format's limits, lossless."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from imednet_assets.defs.sinks.statistical.formats import FORMATS
from imednet_assets.defs.sinks.statistical.frames import ValueRefused, build_frame
from imednet_assets.defs.sinks.statistical.layout import plan_dataset
from imednet_assets.defs.sinks.statistical.names import (
    ShortNames,
    Unsplittable,
    base_name,
    cut_bytes,
    shortened,
    split_text,
)

XPT, SAV, DTA = FORMATS["xpt"], FORMATS["sav"], FORMATS["dta"]


def test_base_names_are_ascii_identifiers_starting_with_a_letter() -> None:
    assert base_name("my var.1 $", XPT) == "MY_VAR_1"
    assert base_name("_hidden", SAV) == "v_hidden"
    assert base_name("1st", DTA) == "v_1st"
    assert base_name("体重", DTA) == "v"


def test_long_names_keep_their_start_and_a_digest_of_the_whole() -> None:
    a, b = "HEART_RATE_SUPINE", "HEART_RATE_STANDING"
    assert shortened(a, XPT)[:5] == "HEART" and len(shortened(a, XPT)) == 8
    assert shortened(a, XPT) != shortened(b, XPT)  # a plain cut would give HEART_RA twice
    assert shortened(a, XPT) == shortened(a, XPT)
    long = "q" * 40
    assert len(shortened(long, DTA)) == 32 and shortened(long, SAV) == long  # SPSS: 64


def test_clashes_and_reserved_words_get_numbers_in_order() -> None:
    names = ShortNames(SAV)
    assert [names.take(n) for n in ("with", "Age", "age", "AGE")] == [
        "with_2", "Age", "age_2", "AGE_3"]
    stata = ShortNames(DTA)
    assert [stata.take(n) for n in ("str12", "strL", "byte", "str")] == [
        "str12_2", "strL_2", "byte_2", "str"]
    assert stata.take_part("str", 2) == "str2_2"  # str2 is a Stata type
    xpt = ShortNames(XPT)
    assert xpt.take("ABCDEFGH") == "ABCDEFGH"
    assert xpt.take_part("ABCDEFGH", 2) == "ABCDEFG2"
    assert xpt.take_part("ABCDEFGH", 12) == "ABCDEF12"
    assert xpt.take("ABCDEFGH") == "ABCDEF_2"


def test_labels_are_cut_between_characters() -> None:
    assert cut_bytes("Łódź", 3) == "Ł" and cut_bytes("abc", 40) == "abc"


@pytest.mark.parametrize("text", ["x" * 1000, "é" * 333, "😀" * 101, "a" * 199 + "é" * 5,
                                  "a" * 195 + " " * 10 + "b" * 10])
def test_pieces_fit_join_back_and_never_end_in_a_blank(text: str) -> None:
    pieces = split_text(text, 200, keeps_trailing_blanks=False)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 200 for p in pieces)
    assert not any(p.endswith(" ") for p in pieces[:-1])


def test_a_run_of_blanks_longer_than_a_piece_cannot_be_split() -> None:
    with pytest.raises(Unsplittable):
        split_text("x" + " " * 250 + "y", 200, keeps_trailing_blanks=False)
    assert "".join(split_text("x" + " " * 250 + "y", 200, keeps_trailing_blanks=True)) == (
        "x" + " " * 250 + "y")


def test_a_dataset_wider_than_sas_transport_holds_is_refused() -> None:
    rules = dataclasses.replace(XPT, max_columns=5)
    table = pa.table({"record_id": [7, 8], "note": ["x" * 450, "short"]})
    dataset = plan_dataset(rules, name="AE", original="AE", table="form_AE", label="AE",
                           schema=table.schema)
    with pytest.raises(ValueRefused, match="study S, table form_AE: 4 columns, more than the 3 "
                       "SAS transport .* holds after splitting long texts; the longest: "
                       "variable note, record 7, 450 bytes"):
        build_frame(dataset, table, dataclasses.replace(rules, max_columns=3), "S")
    assert list(build_frame(dataset, table, rules, "S").frame.columns) == [
        shortened("RECORD_ID", XPT), "NOTE", "NOTE2", "NOTE3"]
