"""Dates and datetimes reach pyreadstat as numbers: the files must be the ones pyreadstat writes
from date and datetime columns itself (which copies the whole frame to convert them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyreadstat
import pytest

from imednet_assets.defs.sinks.statistical.formats import FORMATS
from imednet_assets.defs.sinks.statistical.frames import _date_numbers, _datetime_numbers

DATES = [dt.date(2024, 2, 29), None, dt.date(1959, 12, 31), dt.date(1582, 10, 15),
         dt.date(1970, 1, 1)]
STAMPS = [dt.datetime(2024, 4, 9, 16, 40, 3, 123456), None,
          dt.datetime(1959, 12, 31, 23, 59, 59, 999999), dt.datetime(1970, 1, 1),
          dt.datetime(2099, 12, 31, 0, 0, 0, 1)]


def _write(fmt: str, frame: pd.DataFrame, path: Path, **options: object) -> bytes:
    rules = FORMATS[fmt]
    kwargs = {**rules.writer_kwargs(), **options}
    if fmt == "xpt":
        kwargs["table_name"] = "DATES"
    rules.write(frame, str(path), **kwargs)
    return path.read_bytes()


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_dates_and_datetimes_as_numbers_write_pyreadstats_own_bytes(tmp_path: Path,
                                                                    fmt: str) -> None:
    rules = FORMATS[fmt]
    own = pd.DataFrame({"day": pd.Series(DATES, dtype=object),
                        "stamp": pd.Series(STAMPS, dtype="datetime64[us]")})
    ours = pd.DataFrame({
        "day": _date_numbers(pa.chunked_array([pa.array(DATES, pa.date32())]), rules),
        "stamp": _datetime_numbers(pa.chunked_array([pa.array(STAMPS, pa.timestamp("us"))]),
                                   rules),
    })
    formats = {"day": rules.value_date_format, "stamp": rules.datetime_format}
    suffix = rules.suffix
    expected = _write(fmt, own, tmp_path / f"own{suffix}")
    written = _write(fmt, ours, tmp_path / f"ours{suffix}", variable_format=formats)
    assert written == expected
    read = {"xpt": pyreadstat.read_xport, "sav": pyreadstat.read_sav,
            "dta": pyreadstat.read_dta}[fmt]
    back, _ = read(str(tmp_path / f"ours{suffix}"))
    assert [None if pd.isna(v) else v for v in back["day"]] == DATES
    # the formats hold seconds as doubles (Stata: milliseconds): a microsecond may not survive
    stamps = [None if pd.isna(v) else v.to_pydatetime() for v in back["stamp"]]
    assert [s is None for s in stamps] == [s is None for s in STAMPS]
    assert all(abs(a - b) < dt.timedelta(milliseconds=1)
               for a, b in zip(stamps, STAMPS, strict=True) if a is not None and b is not None)
