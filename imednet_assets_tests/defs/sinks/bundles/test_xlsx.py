"""XLSX at Excel's row limit: a long form continues on further sheets, listed and complete."""

from __future__ import annotations

import datetime as dt

from imednet_assets.defs.sinks.bundles.content import StudyContent, extraction_time
from imednet_assets.defs.sinks.bundles.xlsx import write_xlsx
from imednet_assets.defs.sinks.tabular import StudyTables
from imednet_assets_tests.defs.sinks.bundles.checks import check_xlsx, xlsx_information
from imednet_assets_tests.defs.sinks.bundles.conftest import Bundles, read_xlsx
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, variable, write_study


def test_a_form_longer_than_a_sheet_continues_on_numbered_sheets(bundles: Bundles) -> None:
    variables = [variable(1, "x" * 40, "v", "NUMBER"), variable(2, "small", "w", "TEXT")]
    records = [record(i, "x" * 40, {"v": str(i)}) for i in range(1, 6)]
    records.append(record(9, "small", {"w": "=w"}))
    write_study(bundles.lake, "A", ["x" * 40, "small"], variables, records)
    path = bundles.root / "A.xlsx"
    bundles.root.mkdir()
    slices = bundles.slices("A")
    with StudyTables("A", slices) as tables:
        content = StudyContent(tables, headers="names", source="test",
                               extracted_at=extraction_time(slices), batch_rows=2)
        stats = write_xlsx(path, content, max_rows=3)  # header + 2 rows per sheet

    long = "x" * 24 + "~" + stats.sheets[f"form_{'x' * 40}"][0][0][-6:]
    assert stats.sheets == {
        f"form_{'x' * 40}": [(long, 2), (stats.sheets[f"form_{'x' * 40}"][1][0], 2),
                             (stats.sheets[f"form_{'x' * 40}"][2][0], 1)],
        "form_small": [("small", 1)],
    }
    names = [n for n, _ in stats.sheets[f"form_{'x' * 40}"]]
    assert names[1].endswith(" (2)") and names[2].endswith(" (3)")
    assert all(len(n) <= 31 for n in names)
    assert names[1] == "x" * 20 + "~" + long[-6:] + " (2)"  # same digest: same form
    assert list(read_xlsx(path)) == ["information", "dictionary", "small", *names]
    _, forms, _ = xlsx_information(read_xlsx(path)["information"])
    assert [(f[3], f[4]) for f in forms] == [("small", 1), (names[0], 2), (names[1], 2),
                                             (names[2], 1)]
    check_xlsx(path, bundles.lake_tables("A"))  # every row once, in order, across the sheets
    assert stats.rows == {f"form_{'x' * 40}": 5, "form_small": 1}
    assert content.latest_change is None and isinstance(content.extracted_at, dt.datetime)
