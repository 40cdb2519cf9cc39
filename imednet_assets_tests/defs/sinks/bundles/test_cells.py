"""Pure cell rules: neutralisation, Excel limits, headers, sheet and folder names."""

from __future__ import annotations

import pyarrow as pa
import pytest

from imednet_assets.defs.lake.slice import NULL_PARTITION
from imednet_assets.defs.sinks.bundles.cells import (
    SheetNames,
    clip_for_xlsx,
    form_headers,
    neutralise,
    neutralise_array,
    study_folder,
    utf16_length,
)
from imednet_assets.defs.sinks.duckdb.naming import META_COLUMNS, plan_form_tables
from imednet_assets_tests.defs.sinks.bundles.conftest import neutralised

CASES = [
    ("=1+1", "'=1+1"),
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("-", "'-"),
    ("-5", "-5"),  # numerals are numbers to a spreadsheet, not formulas
    ("+1.5e3", "+1.5e3"),
    ("-.5", "-.5"),
    ("-5\n", "'-5\n"),
    ("-٣", "'-٣"),  # only ASCII digits make a numeral
    ("'=already quoted", "'=already quoted"),
    (" =1", " =1"),
    ("a=1", "a=1"),
    ("", ""),
    ("体重", "体重"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_neutralise(text: str, expected: str) -> None:
    assert neutralise(text) == expected
    assert neutralised(text) == expected  # the tests' own statement of the rule agrees


def test_neutralise_array_keeps_nulls_and_takes_large_strings() -> None:
    values = pa.array(["=x", None, "ok", "-1"], pa.large_string())
    assert neutralise_array(values).to_pylist() == ["'=x", None, "ok", "-1"]


def test_clip_for_xlsx_keeps_short_text_and_cuts_long_text_visibly() -> None:
    assert clip_for_xlsx("x" * 32_767) == ("x" * 32_767, False)
    big = "é" * 50_000 + "x" * 2_000
    cell, cut = clip_for_xlsx(big)
    marker = " …[cut: 52000 characters, the full value is in the CSV and JSON bundles]"
    assert cut and cell.endswith(marker)
    assert cell == "é" * (32_767 - len(marker)) + marker
    # characters outside the BMP count twice in Excel and are never split
    emoji = "\U0001f600" * 20_000
    cell, cut = clip_for_xlsx(emoji)
    assert cut and utf16_length(cell) <= 32_767 and utf16_length(cell) >= 32_765
    assert set(cell[: cell.index(" …[cut")]) == {"\U0001f600"}


def _plan(variables: list[tuple[str, str, str | None]]):
    table = pa.Table.from_pylist(
        [{"form_key": "F", "variable_name": n, "variable_type": t, "label": lab,
          "variable_id": i, "deleted": False, "disabled": False}
         for i, (n, t, lab) in enumerate(variables, 1)])
    return plan_form_tables(["F"], table)[0]


def test_headers_by_names_fall_back_to_the_column_name_on_a_clash() -> None:
    form = _plan([("sysbp", "NUMBER", "BP"), ("sysbp__raw", "TEXT", None),
                  ("AGE", "TEXT", None), ("age", "TEXT", None), ("record_id", "TEXT", None),
                  ("Größe", "NUMBER", None), ('odd "x" $.y', "TEXT", None)])
    headers = form_headers(form, "names")
    assert {c: headers[c] for c in META_COLUMNS} == {c: c for c in META_COLUMNS}
    assert [(c.variable_name, headers[c.column_name],
             c.raw_column_name and headers[c.raw_column_name]) for c in form.columns] == [
        ("AGE", "AGE", None),
        ("Größe", "Größe", "Größe__raw"),
        ("age", "age_2", None),  # case-insensitive clash with AGE: the column name
        ('odd "x" $.y', 'odd "x" $.y', None),
        ("record_id", "record_id_2", None),  # clashes with the meta column
        ("sysbp", "sysbp", "sysbp__raw_2"),  # its raw header yields to the variable sysbp__raw
        ("sysbp__raw", "sysbp__raw", None),
    ]


def test_headers_by_labels_qualify_shared_labels_and_fall_back_to_names() -> None:
    form = _plan([("wt1", "NUMBER", "Weight"), ("wt2", "NUMBER", " weight "),
                  ("cm", "TEXT", None), ("note", "TEXT", "  "), ("dm", "TEXT", "deleted"),
                  ("ht", "TEXT", "=Height"), ("x", "TEXT", "Unique")])
    headers = form_headers(form, "labels")
    assert [(c.variable_name, headers[c.column_name]) for c in form.columns] == [
        ("cm", "cm"),  # no label: the variable name
        ("dm", "deleted [dm]"),  # the label equals a meta column
        ("ht", "=Height"),  # neutralised only when written to a cell
        ("note", "note"),  # blank label
        ("wt1", "Weight [wt1]"),  # shared label (case-insensitively), each qualified
        ("wt2", "weight [wt2]"),
        ("x", "Unique"),
    ]
    assert headers["wt1__raw"] == "Weight [wt1]__raw"
    with pytest.raises(ValueError, match="header mode must be one of names, labels, not 'ids'"):
        form_headers(form, "ids")  # type: ignore[arg-type]


def test_sheet_names_are_valid_unique_and_deterministic() -> None:
    names = SheetNames()
    taken = [names.take(w) for w in ["AE Log!", "a[b]:c*d?e/f\\g", "'quoted'", "Dictionary",
                                     "x" * 40, "x" * 40 + "y", "ae log!", "history", "",
                                     "体重" * 20]]
    assert taken[:4] == ["AE Log!", "a_b__c_d_e_f_g", "quoted", "Dictionary (2)"]
    assert taken[4] == "x" * 24 + "~" + taken[4][-6:] and len(taken[4]) == 31
    assert taken[5] != taken[4] and len(taken[5]) == 31
    assert taken[6:9] == ["ae log! (2)", "history (2)", "form"]
    assert utf16_length(taken[9]) <= 31
    assert len({t.lower() for t in taken}) == len(taken)
    again = SheetNames()
    assert [again.take(w) for w in ["AE Log!", "a[b]:c*d?e/f\\g"]] == taken[:2]


def test_study_folder_is_one_safe_name() -> None:
    assert study_folder("CARDIO-01") == "CARDIO-01"
    assert study_folder("a/b c") == "a%2Fb%20c"
    assert study_folder("..") == "%2E."
    assert study_folder(".hidden") == "%2Ehidden"
    assert study_folder("") == NULL_PARTITION
    long = study_folder("s" * 300)
    assert len(long) == 120 and long != study_folder("s" * 301)
