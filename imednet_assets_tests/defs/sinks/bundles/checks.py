"""Cell-by-cell comparison of each bundle format with the lake's tables (`StudyTables`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from imednet_assets_tests.defs.sinks.bundles.conftest import (
    csv_cell,
    csv_expected,
    json_expected,
    neutralised,
    read_csv_zip,
    read_json_zip,
    read_xlsx,
    rows_of,
    xlsx_expected,
)

MAX_CELL = 32_767
#: what the bundle's dictionary adds to the lake's: the headers each variable got
ADDED = ["header", "raw_header"]


def _lake_part(name: str, headers: list, rows: list) -> tuple[list, list]:
    """The dictionary's lake columns (the added header columns are checked apart)."""
    if name != "variables":
        return headers, rows
    n = len(headers) - len(ADDED)
    assert list(headers[n:]) == ADDED
    return headers[:n], [row[:n] for row in rows]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut_marker(text: str) -> str:
    return f" …[cut: {len(text)} characters, the full value is in the CSV and JSON bundles]"


def check_csv(path: Path, lake: dict[str, pa.Table]) -> dict[str, list[str]]:
    """Every cell of every form file and of the dictionary equals the lake; returns headers."""
    members = read_csv_zip(path)
    forms = [n for n in lake if n != "variables"]
    assert sorted(members) == sorted(
        [f"{n}.csv" for n in forms] + ["dictionary.csv", "forms.csv", "information.csv"]
    )
    out = {}
    for name, table in lake.items():
        headers, rows = members["dictionary.csv" if name == "variables" else f"{name}.csv"]
        headers, rows = _lake_part(name, headers, rows)
        types = table.schema.types
        assert len(headers) == len(types), name
        got = [[csv_cell(v, t) for v, t in zip(row, types, strict=True)] for row in rows]
        want = [[csv_expected(v, t) for v, t in zip(row, types, strict=True)]
                for row in rows_of(table)]
        assert got == want, name
        out[name] = headers
    return out


def check_json(path: Path, lake: dict[str, pa.Table]) -> dict[str, list[str]]:
    """Every value of every form file and of the dictionary equals the lake (exact, not
    neutralised); returns the keys of each table."""
    members = read_json_zip(path)
    forms = [n for n in lake if n != "variables"]
    assert sorted(members) == sorted(
        [f"{n}.jsonl" for n in forms] + ["dictionary.jsonl", "information.json"]
    )
    out = {}
    for name, table in lake.items():
        objects = members["dictionary.jsonl" if name == "variables" else f"{name}.jsonl"]
        types = table.schema.types
        want = [[json_expected(v, t) for v, t in zip(row, types, strict=True)]
                for row in rows_of(table)]
        keys = list(objects[0]) if objects else []
        assert all(list(o) == keys for o in objects)
        keys, got = _lake_part(name, keys, [list(o.values()) for o in objects])
        assert len(got) == len(want), name
        for g, w in zip(got, want, strict=True):
            assert g == w, [(k, a, b) for k, a, b in zip(keys, g, w, strict=True) if a != b]
        out[name] = keys
    return out


def xlsx_information(rows: list[tuple]) -> tuple[dict[str, Any], list[tuple], list[tuple]]:
    """(facts, forms rows, cut cells rows) of the information sheet."""
    rows = [r for r in rows if any(v is not None for v in r)]
    forms_at = next(i for i, r in enumerate(rows) if r[0] == "form_key")
    cuts_at = next(i for i, r in enumerate(rows) if r[0] == "sheet")
    facts = {r[0]: r[1] for r in rows[:forms_at]}
    return facts, [r[:5] for r in rows[forms_at + 1:cuts_at]], [r[:5] for r in rows[cuts_at + 1:]]


def check_xlsx(path: Path, lake: dict[str, pa.Table]) -> dict[str, list[str]]:
    """Every cell of every form sheet (continuations included) and of the dictionary sheet
    equals the lake; a text over Excel's limit is its start plus the cut marker and is listed
    under "cut cells". Returns the header row of each table."""
    sheets = read_xlsx(path)
    facts, forms, cuts = xlsx_information(sheets["information"])
    assert facts["cut_cells"] == len(cuts)
    sheets_of: dict[str, list[str]] = {}
    for _key, _name, table_name, cell, rows in forms:
        # the sheet column is neutralised like every text cell; the sheet itself is named as is
        sheet = cell[1:] if cell[:1] == "'" and neutralised(cell[1:]) == cell else cell
        sheets_of.setdefault(table_name, []).append(sheet)
        assert len(sheets[sheet]) - 1 == rows
    assert list(sheets) == ["information", "dictionary",
                            *[s for n in sheets_of for s in sheets_of[n]]]
    assert sorted(sheets_of) == sorted(n for n in lake if n != "variables")
    seen_cuts = []
    out = {}
    for name, table in lake.items():
        names = ["dictionary"] if name == "variables" else sheets_of[name]
        header = sheets[names[0]][0]
        assert all(sheets[s][0] == header for s in names)
        body = [(s, i + 2, row) for s in names for i, row in enumerate(sheets[s][1:])]
        header, _ = _lake_part(name, list(header), [])
        body = [(s, r, row[: len(header)]) for s, r, row in body]
        types = table.schema.types
        want_rows = list(rows_of(table))
        assert len(body) == len(want_rows), name
        for (sheet, excel_row, got), want in zip(body, want_rows, strict=True):
            got = list(got) + [None] * (len(types) - len(got))
            for col, (cell, value, type_) in enumerate(zip(got, want, types, strict=True)):
                expected = xlsx_expected(value, type_)
                if isinstance(expected, str) and _utf16(expected) > MAX_CELL:
                    marker = _cut_marker(expected)
                    assert cell.endswith(marker) and _utf16(cell) <= MAX_CELL
                    assert expected.startswith(cell[: -len(marker)])
                    assert _utf16(cell[: -len(marker)]) >= MAX_CELL - _utf16(marker) - 1
                    seen_cuts.append((sheet, f"{_col_letter(col)}{excel_row}", len(expected)))
                else:
                    assert cell == expected, (name, sheet, excel_row, col)
        out[name] = list(header)
    assert sorted(seen_cuts) == sorted((s, c, n) for s, c, _col, _rid, n in cuts), cuts
    return out


def _col_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def check_all(bundles, study: str) -> dict[str, dict[str, list[str]]]:
    """All three bundles of `study` against the lake; the headers each format shows (CSV and XLSX
    neutralised, JSON exact) agree with the bundle's dictionary."""
    lake = bundles.lake_tables(study)
    headers = {
        "csv": check_csv(bundles.path(study, "csv"), lake),
        "xlsx": check_xlsx(bundles.path(study, "xlsx"), lake),
        "json": check_json(bundles.path(study, "json"), lake),
    }
    for name in lake:
        if name == "variables":
            continue
        keys = headers["json"][name] or None
        if keys is not None:
            assert headers["csv"][name] == [neutralised(k) for k in keys]
        assert headers["csv"][name] == headers["xlsx"][name]
    return headers
