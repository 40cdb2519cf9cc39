"""Helpers for the statistical export tests: a small hostile lake study, a real Dagster run, and
a reader that turns each export back into the DuckDB tables through the mapping (pyreadstat).

Reading is pyreadstat's own, as a user would do it; the reconstruction follows the mapping
sheet (`mapping.csv`), independent of the writer's code.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyreadstat
import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.statistical.assets import statistical_assets
from imednet_assets.defs.sinks.statistical.definitions import statistical_resources
from imednet_assets.defs.sinks.statistical.formats import FORMATS
from imednet_assets.defs.sinks.statistical.io_manager import export_path
from imednet_assets.defs.sinks.statistical.names import base_name, shortened
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets_tests.defs.sinks.bundles.conftest import neutralised
from imednet_assets_tests.defs.sinks.duckdb.conftest import record, variable, write_study
from imednet_assets_tests.defs.sinks.runs import materialize_study

READERS = {"xpt": pyreadstat.read_xport, "sav": pyreadstat.read_sav, "dta": pyreadstat.read_dta}
CHANGED = dt.datetime(2024, 5, 1, 8, 30, 0)
HOSTILE = 'odd "name" \'$.select'
LONG_NAME = "q" * 40 + "_tail"
LONG_LABEL = "Ł" * 150 + " end"  # 304 bytes: over every format's label limit
#: a variable whose name is exactly what the long name shortens to for SAS: they collide
COLLIDER = "heart_rate_supine"
TAKEN = shortened(base_name(COLLIDER, FORMATS["xpt"]), FORMATS["xpt"]).lower()
SPACED = "a" * 195 + " " * 10 + "é" * 100  # the cut at 200 bytes falls among the blanks
MEDIUM = "Zürich—" * 40  # 360 bytes: two SAS pieces
HUGE = "é" * 20_000 + "x" * 1_000  # 41,000 bytes: two SPSS pieces
BLANKS = "x" + " " * 250 + "y"  # no SAS piece can end in a blank: refused


def hostile_study(lake: Path, study: str = "A", *, refuse: bool = False,
                  nul: bool = False) -> None:
    """Names with blanks, `$`, `.`, quotes, SQL words, unicode and colliding long names, labels
    over every limit, texts over 200 bytes, dates, numbers, booleans and missing values."""
    variables = [
        variable(1, "VS", "sysbp", "NUMBER", "Systolic BP"),
        variable(2, "VS", "vsdt", "DATE", "Visit date"),
        variable(3, "VS", "vstm", "DATETIME", "Visit time"),
        variable(4, "VS", "smoker", "CHECKBOX", "=Smoker?"),
        variable(5, "VS", HOSTILE, "MEMO", LONG_LABEL),
        variable(6, "VS", "体重", "NUMBER", "Weight"),
        variable(7, "VS", "select", "TEXT", "select"),
        variable(8, "VS", "record_id", "TEXT", "Record"),
        variable(9, "VS", LONG_NAME, "TEXT", "Long name"),
        variable(10, "VS", LONG_NAME + "2", "TEXT", "Long name 2"),
        variable(11, "VS", COLLIDER, "NUMBER", "Heart rate"),
        variable(12, "VS", TAKEN, "TEXT", "Takes the short name first"),
        variable(13, "VS", "my var.1 $", "TEXT", "b" * 39 + " and more"),  # cut at a blank
        variable(20, "Adverse events $.", "ae term", "TEXT", "AE term"),
    ]
    records = [
        record(1, "VS", {"sysbp": "-5", "vsdt": "2024-04-09", "vstm": "2024-04-09 16:40:03",
                         "smoker": "true", HOSTILE: MEDIUM, "体重": "72.5", "select": "x",
                         "record_id": "@SUM(A1)", LONG_NAME: HUGE, LONG_NAME + "2": SPACED,
                         COLLIDER: "61", TAKEN: "t", "my var.1 $": ' lead "q" trail '},
               date_modified=CHANGED),
        record(2, "VS", {"sysbp": "1e400", "vsdt": "1899-12-31", "smoker": "FALSE",
                         HOSTILE: 'multi\nline, "quoted"', "体重": "", "select": "",
                         "record_id": "ctl\x01\x07", COLLIDER: "NaN",
                         LONG_NAME: BLANKS if refuse else "short"}),
        record(3, "VS", {"sysbp": "1e300", "体重": "1e-300", "select": "-",
                         HOSTILE: "体重 😀 ﷽"}, deleted=True),
        record(4, "Adverse events $.", {"ae term": "Head\x00ache" if nul else "Headache"},
               parent_record_id=1),
    ]
    write_study(lake, study, ["VS", "Adverse events $.", "EMPTY"], variables, records)


class Exports:
    """A lake folder + export root + Dagster instance, and a way to run the export assets."""

    def __init__(self, tmp_path: Path) -> None:
        self.lake = tmp_path / "lake"
        self.root = tmp_path / "bundles"
        self.scratch = tmp_path / "read"
        self.instance = dg.DagsterInstance.ephemeral()

    def run(self, study: str, *, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        return materialize_study(
            self.instance, study, statistical_assets,
            {"lake_io_manager": LakeIOManager(root=str(self.lake)),
             **statistical_resources(str(self.root))},  # type: ignore[arg-type]
            raise_on_error=raise_on_error)

    def path(self, study: str, fmt: str) -> Path:
        return export_path(self.root, study, fmt)  # type: ignore[arg-type]

    def files(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.root)): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()}

    def slices(self, study: str) -> dict[str, LakeSlice]:
        return {e: LakeSlice.read(self.lake, e, study, SCHEMAS[e]) for e in ENTITIES}

    def duckdb_tables(self, study: str) -> dict[str, pa.Table]:
        """Subjects, visits and the form tables, exactly the DuckDB sink's (StudyTables)."""
        with StudyTables(study, self.slices(study)) as tables:
            return {s.name: tables.read(s).read_all() for s in tables.specs()
                    if s.kind in ("entity", "form")}

    def read(self, study: str, fmt: str) -> tuple[dict[str, tuple[pd.DataFrame, Any]],
                                                  list[dict[str, Any]]]:
        """Every dataset of the export as pyreadstat reads it, and the mapping sheet's rows."""
        folder = self.scratch / fmt
        folder.mkdir(parents=True, exist_ok=True)
        datasets = {}
        with zipfile.ZipFile(self.path(study, fmt)) as zf:
            for name in zf.namelist():
                if name == "mapping.csv":
                    text = zf.read(name).decode()
                    sheet = list(csv.DictReader(io.StringIO(text, newline="")))
                    continue
                file = folder / name
                file.write_bytes(zf.read(name))
                datasets[name.rsplit(".", 1)[0]] = READERS[fmt](str(file))
        return datasets, [{k: unneutralised(v) for k, v in r.items()} for r in sheet]


@pytest.fixture
def exports(tmp_path: Path) -> Exports:
    return Exports(tmp_path)


def unneutralised(text: str) -> str | None:
    """A mapping sheet cell as written before neutralisation (empty: missing)."""
    if text == "":
        return None
    if text.startswith("'") and neutralised(text[1:]) == text:
        return text[1:]
    return text


def expected(value: Any, storage: str, fmt: str) -> Any:
    """What a DuckDB cell reads back as, by the formats' own rules (stated in the mapping's
    storage column and the module docs): missing and empty text are one; SAS and SPSS drop
    trailing blanks; numbers that are not finite are missing, in SAS transport also those beyond
    its IBM floats (about 5.4e-79 to 7.2e75 in size); booleans are 1/0."""
    if value is None:
        return None
    if storage == "text":
        text = value if FORMATS[fmt].keeps_trailing_blanks else value.rstrip(" ")
        return text or None
    if storage == "boolean":
        return float(value)
    if storage == "number":
        if fmt == "xpt" and (abs(value) > 7.2e75 or 0 < abs(value) < 5.4e-79):
            return None
        return float(value) if math.isfinite(value) else None
    return value


def cell(value: Any, storage: str) -> Any:
    """A cell as pyreadstat gives it, in the DuckDB cell's Python type (missing: None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if storage == "text":
        return value or None
    if storage == "datetime":
        return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
    if storage in ("number", "boolean"):
        return float(value)
    return value


NAME = {"xpt": re.compile(r"^[A-Z][A-Z0-9_]{0,7}$"), "sav": re.compile(r"^[A-Za-z][A-Za-z0-9_]*$"),
        "dta": re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")}
