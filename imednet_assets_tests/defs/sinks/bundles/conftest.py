"""Helpers for the bundle tests: real lake folders, a real Dagster run, and readers that turn each
bundle back into rows to compare with the lake's tables (`StudyTables`), cell by cell.

Bundles are files: no server to start. Every reader here is the ordinary library a user would
use (zipfile + csv, openpyxl, json), independent of the writers under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import openpyxl
import pyarrow as pa
import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.bundles.assets import bundle_assets
from imednet_assets.defs.sinks.bundles.definitions import bundle_resources
from imednet_assets.defs.sinks.bundles.io_manager import bundle_path
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets_tests.defs.sinks.runs import materialize_study

LAKE_ENTITIES = ("studies", "sites", "intervals", "forms", "variables", "subjects", "visits",
                 "records", "record_revisions", "queries")
FORMATS = ("csv", "xlsx", "json")
_RISKY = re.compile(r"[=+\-@\t\r]")
_NUMERAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def neutralised(text: str) -> str:
    """The test's own statement of the OWASP rule (not the implementation's)."""
    if text and _RISKY.match(text) and not _NUMERAL.fullmatch(text):
        return "'" + text
    return text


def ooxml_text(text: str) -> str:
    """A cell text as Excel shows it: `_xHHHH_` escapes decoded (openpyxl leaves them)."""
    return _OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


class Bundles:
    """A lake folder + bundle root + Dagster instance, and a way to run the bundle assets."""

    def __init__(self, tmp_path: Path) -> None:
        self.lake = tmp_path / "lake"
        self.root = tmp_path / "bundles"
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, study: str, *, headers: str = "names", raise_on_error: bool = True,
            root: Path | None = None) -> dg.ExecuteInProcessResult:
        return materialize_study(
            self.instance, study, bundle_assets,
            {"lake_io_manager": LakeIOManager(root=str(self.lake)),
             **bundle_resources(str(root or self.root), headers)},  # type: ignore[arg-type]
            raise_on_error=raise_on_error)

    def path(self, study: str, fmt: str) -> Path:
        return bundle_path(self.root, study, fmt)

    def files(self) -> dict[str, bytes]:
        """Every file under the bundle root (hidden temporaries included), by relative path."""
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}

    def slices(self, study: str) -> dict[str, LakeSlice]:
        return {e: LakeSlice.read(self.lake, e, study, SCHEMAS[e]) for e in ENTITIES}

    def lake_tables(self, study: str) -> dict[str, pa.Table]:
        """The study's form tables and dictionary as the lake gives them (StudyTables)."""
        with StudyTables(study, self.slices(study)) as tables:
            return {s.name: tables.read(s).read_all() for s in tables.specs()
                    if s.kind == "form" or s.name == "variables"}


@pytest.fixture
def bundles(tmp_path: Path) -> Bundles:
    return Bundles(tmp_path)


# -- readers: bundle -> {member: (headers, rows)} ---------------------------------------------

def read_csv_zip(path: Path) -> dict[str, tuple[list[str], list[list[str]]]]:
    out = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            text = zf.read(name).decode("utf-8")
            rows = list(csv.reader(io.StringIO(text, newline="")))
            out[name] = (rows[0], rows[1:])
    return out


def read_json_zip(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            text = zf.read(name).decode("utf-8")
            if name.endswith(".jsonl"):
                # lines end in \n only: text may hold U+2028, U+0085... (JSON leaves them as is)
                out[name] = [json.loads(line) for line in text.split("\n") if line]
            else:
                out[name] = json.loads(text)
    return out


def read_xlsx(path: Path) -> dict[str, list[tuple]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return {ws.title: [tuple(ooxml_text(v) if isinstance(v, str) else v for v in row)
                           for row in ws.iter_rows(values_only=True)]
                for ws in book.worksheets}
    finally:
        book.close()


# -- expectations: one lake value -> the cell each format must hold ----------------------------

def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def csv_cell(value: Any, type_: pa.DataType) -> Any:
    """Decode a CSV cell by the lake column's type (text: neutralised, as written)."""
    if value == "":
        return None
    if pa.types.is_string(type_):
        return value
    if pa.types.is_boolean(type_):
        return {"true": True, "false": False}[value]
    if pa.types.is_integer(type_):
        return int(value)
    if pa.types.is_floating(type_):
        return float(value)
    if pa.types.is_date(type_):
        return dt.date.fromisoformat(value)
    if pa.types.is_timestamp(type_):
        return dt.datetime.fromisoformat(value)
    raise AssertionError(f"unexpected type {type_}")


def csv_expected(value: Any, type_: pa.DataType) -> Any:
    value = _finite(value)
    if isinstance(value, str):
        return neutralised(value) or None  # an empty text reads back as an empty field
    return value


def xlsx_expected(value: Any, type_: pa.DataType) -> Any:
    value = _finite(value)
    if isinstance(value, str):
        return neutralised(value)  # an empty text is an empty inline string, not a blank
    if isinstance(value, dt.date) and value.year < 1900:  # outside Excel's calendar: ISO text
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if pa.types.is_date(type_) and value is not None:
        return dt.datetime(value.year, value.month, value.day)
    return value


def json_expected(value: Any, type_: pa.DataType) -> Any:
    value = _finite(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def rows_of(table: pa.Table) -> Iterator[list[Any]]:
    for row in table.to_pylist():
        yield list(row.values())
