"""The rendered paths (XLSX rows and JSON lines made by Arrow) write exactly the bytes of the plain
paths they stand in for: xlsxwriter cell by cell, and `dumps` of one dict per row. Both plain
paths are still in the code (for the values the rendered ones hand over), so each test writes the
same study both ways and compares bytes, over a study of edge values."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import sys
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
from xlsxwriter.utility import _datetime_to_excel_datetime, _preserve_whitespace
from xlsxwriter.xmlwriter import XMLwriter

from imednet_assets.defs.sinks.bundles import archive, jsonl, xlsx, xlsx_rows
from imednet_assets.defs.sinks.bundles.content import StudyContent, extraction_time
from imednet_assets.defs.sinks.bundles.csv_zip import write_csv_zip
from imednet_assets.defs.sinks.tabular import StudyTables
from imednet_assets_tests.defs.sinks.bundles.checks import check_all
from imednet_assets_tests.defs.sinks.bundles.conftest import Bundles
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, variable, write_study

TEXTS = ["&<>", " lead", "trail\u3000", "\u00a0x", "x\u00a0", "<r>x</r>", "<r><t>y</t></r>",
         "<r>&</r>", "a_x0041_b", "ctl\x01", "ff\ufffe", "", "'quote", "=1", "-5", "+1.5e3",
         "@a", "\tt",
         "ok", "x" * 16383, "y" * 16384, "é" * 20000, "😀" * 16384, "😀" * 17000, "a\nb",
         "a\rb", "\u2028", "x\u1680", "\u200bz", "\x1c", "<>&amp;", "end\n", 'q"q', "back\\",
         "体重 😀 ﷽", None]
NUMBERS = ["0", "-0", "1e15", "1e16", "123456789.123456789", "0.1", "3.141592653589793",
           "2.5e-7", "-1e-5", "9007199254740993", "1e300", "NaN", "inf", "", None, "42", "72.5"]
DATES = ["1899-12-31", "1900-01-01", "1900-01-02", "1900-02-28", "1900-02-29", "1900-03-01",
         "2024-04-09", "9999-12-31", "0001-01-01", "", None, "1970-01-01"]
TIMES = ["1900-01-01 00:00:00", "1900-01-01 12:00:00", "1900-01-02 23:59:59",
         "1900-01-03 00:00:00", "1900-03-01 06:00:00", "2024-04-09 16:40:03",
         "2024-04-09 16:40:03.123456", "1899-12-31 23:59:59", "9999-12-31 23:59:59",
         "1970-01-01 00:00:00", "", None]
BOOLS = ["true", "false", "TRUE", "", None, "1", "0"]
#: Values xlsxwriter writes wrongly, whichever path (text `<r>...</r>`, which it copied in as raw
#: rich-text XML, is written as plain runs, see `xlsx.write_text`): a time on 1900-01-01 becomes
#: serial 0 (read back
#: as a bare time), a number is written with 16 significant digits (a double needing 17, or a
#: time to the microsecond, comes back a little off). The byte comparisons keep them; the cell
#: checks leave them out.
QUIRKS = ("1900-01-01 00:00:00", "1900-01-01 12:00:00",
          "123456789.123456789", "2024-04-09 16:40:03.123456")


def edge_study(bundles: Bundles, study: str = "E", rows: int = 60, quirks: bool = True) -> None:
    """Every kind of cell next to every other, empty rows, a form whose only variable is always
    empty, and forms whose one date or time is in their last row."""
    variables = [variable(1, "E", "txt", "TEXT"), variable(2, "E", "num", "NUMBER"),
                 variable(3, "E", "dat", "DATE"), variable(4, "E", "tim", "DATETIME"),
                 variable(5, "E", "chk", "CHECKBOX"), variable(6, "E", "memo", "MEMO"),
                 variable(7, "N", "only", "TEXT"), variable(8, "D", "d1", "DATE"),
                 variable(9, "T", "t1", "DATETIME")]
    records = []
    for i in range(rows):
        data = {"txt": TEXTS[i % len(TEXTS)], "num": NUMBERS[i % len(NUMBERS)],
                "dat": DATES[i % len(DATES)], "tim": TIMES[(i * 7) % len(TIMES)],
                "chk": BOOLS[i % len(BOOLS)], "memo": TEXTS[(i * 5) % len(TEXTS)]}
        if not quirks:
            data = {k: (None if v in QUIRKS else v) for k, v in data.items()}
        records.append(record(i + 1, "E", {} if i % 17 == 3 else data))
    records += [record(rows + 1 + i, "N", {"only": None}) for i in range(3)]
    records.append(record(rows + 10, "D", {"d1": "2001-02-03"}))
    records.append(record(rows + 11, "T", {"t1": "2001-02-03 04:05:06"}))
    write_study(bundles.lake, study, ["E", "N", "D", "T"], variables, records)


def _content(bundles: Bundles, tables: StudyTables, study: str, batch_rows: int,
             headers: str = "names") -> StudyContent:
    return StudyContent(tables, headers=headers, source="test",  # type: ignore[arg-type]
                        extracted_at=extraction_time(bundles.slices(study)),
                        study_name="Edge", batch_rows=batch_rows)


def _write(bundles: Bundles, writer, path: Path, batch_rows: int, **kwargs) -> None:
    with StudyTables("E", bundles.slices("E")) as tables:
        writer(path, _content(bundles, tables, "E", batch_rows), **kwargs)


@pytest.mark.parametrize(("batch_rows", "max_rows"), [(10_000, None), (7, None), (1, None),
                                                       (7, 5), (1, 2), (10_000, 9)])
def test_xlsx_rendered_rows_are_the_bytes_xlsxwriter_writes_cell_by_cell(
    bundles: Bundles, monkeypatch: pytest.MonkeyPatch, batch_rows: int, max_rows: int | None
) -> None:
    edge_study(bundles)
    bundles.root.mkdir()
    kwargs = {} if max_rows is None else {"max_rows": max_rows}
    rendered = bundles.root / "rendered.xlsx"
    _write(bundles, xlsx.write_xlsx, rendered, batch_rows, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(xlsx._Sheet, "_rows", lambda self, rows, first: self._by_cell(rows, first))
        by_cell = bundles.root / "by_cell.xlsx"
        _write(bundles, xlsx.write_xlsx, by_cell, batch_rows, **kwargs)
    assert rendered.read_bytes() == by_cell.read_bytes()


@pytest.mark.parametrize("batch_rows", [10_000, 7, 1])
def test_json_rendered_lines_are_the_bytes_of_dumps_row_by_row(
    bundles: Bundles, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    edge_study(bundles)
    bundles.root.mkdir()
    rendered = bundles.root / "rendered.jsonl.zip"
    _write(bundles, jsonl.write_jsonl_zip, rendered, batch_rows)
    with monkeypatch.context() as patch:
        patch.setattr(jsonl, "_lines", jsonl._lines_by_value)
        by_value = bundles.root / "by_value.jsonl.zip"
        _write(bundles, jsonl.write_jsonl_zip, by_value, batch_rows)
    assert rendered.read_bytes() == by_value.read_bytes()


def test_every_cell_of_the_edge_study_equals_the_lake(bundles: Bundles) -> None:
    edge_study(bundles, rows=40, quirks=False)
    bundles.run("E")
    check_all(bundles, "E")


@pytest.mark.parametrize("writer", [write_csv_zip, xlsx.write_xlsx, jsonl.write_jsonl_zip])
def test_the_batch_size_changes_no_byte(bundles: Bundles, writer) -> None:
    # the CSV writes a batch's times with microseconds when one of them has some: a time to the
    # microsecond would make the CSV depend on the batches (as it always did)
    edge_study(bundles, quirks=writer is not write_csv_zip)
    bundles.root.mkdir()
    paths = [bundles.root / f"{n}.bundle" for n in (10_000, 3, 1)]
    for n, path in zip((10_000, 3, 1), paths, strict=True):
        _write(bundles, writer, path, n)
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()


def test_python_spaces_are_what_python_calls_whitespace() -> None:
    assert tuple(
        c for c in range(sys.maxunicode + 1) if chr(c).isspace()) == xlsx_rows.PYTHON_SPACES


def _code_points() -> list[str]:
    return [chr(c) for c in [*range(0xD800), *range(0xE000, 0x10000), 0x1F600, 0x10FFFF]]


def test_text_cells_render_as_xlsxwriter_escapes_them_for_every_character() -> None:
    values = [v for c in _code_points() for v in (c, f"a{c}", f"{c}a", f"a{c}b")]
    values += ["_x0041_", "a_x00ff_b", "<r>x</r>", "<r>", "x" * 16_383, "x" * 16_384, ""]
    cells = xlsx_rows.render("text", pa.array(values, pa.string()))
    assert not isinstance(cells.opening, str)  # some values keep their spaces
    rendered = [f"{o}{v}</t>" for o, v in zip(cells.opening.to_pylist(),
                                                cells.value.to_pylist(), strict=True)]
    fast = 0
    for value, slow, got in zip(values, cells.slow.tolist(), rendered, strict=True):
        text = XMLwriter._escape_control_characters(value)
        special = text != value or text.startswith("<r>") or len(value) > 16_383
        assert slow or not special, repr(value)  # what xlsxwriter changes is never rendered
        if not slow:
            fast += 1
            space = ' xml:space="preserve"' if _preserve_whitespace(text) else ""
            data = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert got == f"<t{space}>{data}</t>", repr(value)
    assert fast > 0.99 * len(values)  # and the rest is rare: control characters and such


def test_datetime_serials_are_xlsxwriter_serials() -> None:
    rng = random.Random(7)
    low, high = dt.datetime(1900, 1, 3), dt.datetime(9999, 12, 30)
    span = int((high - low).total_seconds() * 1e6)
    stamps = [low + dt.timedelta(microseconds=rng.randrange(span)) for _ in range(20_000)]
    stamps += [low, high, dt.datetime(1900, 2, 28, 23, 59, 59, 999_999),
               dt.datetime(1900, 3, 1), dt.datetime(2024, 4, 9, 16, 40, 3, 123_456)]
    cells = xlsx_rows.render("datetime", pa.array(stamps, pa.timestamp("us")))
    assert not cells.slow.any()
    want = [f"{_datetime_to_excel_datetime(s, False, False):.16G}" for s in stamps]
    assert cells.value.to_pylist() == want
    millis = [s.replace(microsecond=s.microsecond // 1000 * 1000) for s in stamps[:50]]
    aware = xlsx_rows.render("datetime", pa.array(
        [s.replace(tzinfo=dt.UTC) for s in millis], pa.timestamp("ms", "UTC")))
    want_ms = [f"{_datetime_to_excel_datetime(s, False, False):.16G}" for s in millis]
    assert aware.value.to_pylist() == want_ms


def test_numbers_render_as_xlsxwriter_formats_them() -> None:
    rng = random.Random(3)
    floats = [rng.uniform(-1e6, 1e6) for _ in range(5_000)] + [
        0.0, -0.0, 0.1, 1 / 3, 1e15, 1e16, 1e-5, 2.5e-7, 1e300, 5e-324, 123456789.123456789]
    cells = xlsx_rows.render("float", pa.array(floats, pa.float64()))
    assert cells.value.to_pylist() == [f"{v:.16G}" for v in floats]
    ints = [0, -1, 2**53, -(2**53), 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]
    cells = xlsx_rows.render("int", pa.array(ints, pa.int64()))
    assert cells.slow.tolist() == [False, False, False, False, True, True, True, True]
    assert cells.value.to_pylist()[:4] == [f"{v:.16G}" for v in ints[:4]]


def test_json_values_are_dumps_for_every_character_and_type() -> None:
    texts = [v for c in _code_points() for v in (c, f"a{c}")] + ["", 'q"q', "b\\s", None]
    assert jsonl.json_values(pa.array(texts, pa.string())).to_pylist() == [
        jsonl.dumps(v) for v in texts]
    rng = random.Random(5)
    floats = [rng.uniform(-1e6, 1e6) for _ in range(2_000)] + [
        0.0, -0.0, 1e16, 1e-5, 1e300, 5e-324, None]
    days = [dt.date(1, 1, 1), dt.date(999, 12, 31), dt.date(1970, 1, 1), dt.date(9999, 12, 31),
            None]
    stamps = [dt.datetime(1, 1, 1), dt.datetime(2024, 4, 9, 16, 40, 3),
              dt.datetime(2024, 4, 9, 16, 40, 3, 5), dt.datetime(9999, 12, 31, 23, 59, 59), None]
    columns = [pa.array(floats, pa.float64()), pa.array([1, -2, 2**63 - 1, None], pa.int64()),
               pa.array([True, False, None]), pa.array(days, pa.date32()),
               pa.array(stamps, pa.timestamp("us")), pa.array(stamps, pa.timestamp("us", "UTC")),
               pa.array([[1, 2], None, []], pa.list_(pa.int64())),
               pa.array(["x", None], pa.large_string())]
    for col in columns:
        assert jsonl.json_values(col).to_pylist() == [jsonl.dumps(v) for v in col.to_pylist()]
    with pytest.raises(ValueError, match="Out of range float values"):
        jsonl.json_values(pa.array([1.0, float("nan")]))  # refused like dumps refuses it


def test_json_lines_keep_one_key_per_name_like_a_dict() -> None:
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2]), pa.array(["a", "b"])], names=["k", "k"])
    assert bytes(jsonl._lines(batch)) == b'{"k":"a"}\n{"k":"b"}\n'
    assert bytes(jsonl._lines(pa.RecordBatch.from_pydict({"k": pa.array([], pa.int64())}))) == b""


class _Failing(io.BytesIO):
    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        if len(self.getvalue()) > 5:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_pipelined_member_writes_in_order_and_raises_a_failed_write() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf, archive.open_member(zf, "a.txt") as out:
        for i in range(1000):
            out.write(f"{i}\n".encode())
    with zipfile.ZipFile(buffer) as zf:
        assert zf.read("a.txt") == "".join(f"{i}\n" for i in range(1000)).encode()
        assert zf.getinfo("a.txt").date_time == archive.FIXED_DATE_TIME

    writer = archive.PipelinedWriter(_Failing())
    with pytest.raises(OSError, match="No space left"), writer:
        for _ in range(100):
            writer.write(b"0123456789")
    assert writer.closed


def test_json_bundle_information_is_unchanged_json(bundles: Bundles) -> None:
    edge_study(bundles, rows=5)
    bundles.run("E")
    with zipfile.ZipFile(bundles.path("E", "json")) as zf:
        info = json.loads(zf.read(jsonl.INFORMATION_MEMBER))
    assert info["study_key"] == "E" and [f["rows"] for f in info["forms"]] == [1, 5, 3, 1]
