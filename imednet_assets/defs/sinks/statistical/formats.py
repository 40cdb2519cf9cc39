"""What each statistical format allows (names, labels, text values) and how pyreadstat writes it.

pyreadstat does not enforce these limits itself: a longer name or value is written as is and
breaks the file for SAS, SPSS or Stata. The platform shortens and splits to fit (see `names`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pyreadstat

StatFormat = Literal["xpt", "sav", "dta"]


@dataclass(frozen=True)
class FormatRules:
    """One format's limits (bytes of UTF-8 unless said otherwise) and its pyreadstat writer."""

    fmt: StatFormat
    what: str
    suffix: str  # of each dataset file inside the study's zip
    name_max: int  # variable and dataset names
    upper: bool  # names in upper case (SAS transport convention)
    label_max: int  # variable labels
    file_label_max: int  # dataset labels
    value_max: int | None  # text values; None: no limit (Stata strL)
    keeps_trailing_blanks: bool  # SAS and SPSS pad text with blanks and drop them on reading
    reserved: frozenset[str]  # names the software keeps for itself (compared in lower case)
    date_format: str  # given to a date column without any value (else pyreadstat makes it text)
    # dates and datetimes go to pyreadstat as the numbers the format stores, with the formats
    # pyreadstat itself would give them: it would otherwise copy the whole frame to convert them
    value_date_format: str  # a date column with values
    datetime_format: str
    epoch_offset_days: int  # days from 1970-01-01 back to the format's epoch
    date_unit_seconds: int  # a date is stored in days (1) or seconds (86,400: SPSS)
    datetime_scale: int  # a datetime is stored in seconds (1) or milliseconds (1,000: Stata)
    # the magnitudes a number may have (IBM floats of SAS transport: ReadStat writes a larger one
    # as infinity and a smaller one as 0 without a word); None: every finite double
    number_range: tuple[float, float] | None
    max_columns: int | None  # variables a dataset may have (SAS transport: a 4-digit count)
    value_labels: bool  # booleans get the value labels 1 "true", 0 "false" (not in transport)
    write: Callable[..., None]
    write_options: tuple[tuple[str, Any], ...] = ()

    def writer_kwargs(self) -> dict[str, Any]:
        return dict(self.write_options)


_SPSS_RESERVED = frozenset(
    ["all", "and", "by", "eq", "ge", "gt", "le", "lt", "ne", "not", "or", "to", "with"])
_STATA_RESERVED = frozenset(
    ["_all", "_b", "byte", "_coef", "_cons", "double", "float", "if", "in", "int", "long", "_n",
     "_pi", "_pred", "_rc", "_skip", "strl", "using", "with"])

FORMATS: dict[StatFormat, FormatRules] = {
    "xpt": FormatRules(
        "xpt", "SAS transport (XPT version 5)", ".xpt", name_max=8, upper=True, label_max=40,
        file_label_max=40, value_max=200, keeps_trailing_blanks=False,
        reserved=frozenset({"_n_", "_error_", "_all_", "_character_", "_numeric_"}),
        date_format="DATE9", value_date_format="DATE", datetime_format="DATETIME",
        epoch_offset_days=3_653, date_unit_seconds=1, datetime_scale=1,
        number_range=(16.0**-65, (1 - 16.0**-14) * 16.0**63),
        max_columns=9_999, value_labels=False,
        write=pyreadstat.write_xport,
        write_options=(("file_format_version", 5),)),
    "sav": FormatRules(
        "sav", "SPSS system file", ".sav", name_max=64, upper=False, label_max=255,
        file_label_max=64, value_max=32_767, keeps_trailing_blanks=False,
        reserved=_SPSS_RESERVED, date_format="DATE11", value_date_format="DATE",
        datetime_format="DATETIME", epoch_offset_days=141_428, date_unit_seconds=86_400,
        datetime_scale=1, number_range=None, max_columns=None,
        value_labels=True,
        write=pyreadstat.write_sav),
    "dta": FormatRules(
        "dta", "Stata dataset (version 15, strL for long text)", ".dta", name_max=32,
        upper=False, label_max=80, file_label_max=80, value_max=None, keeps_trailing_blanks=True,
        reserved=_STATA_RESERVED, date_format="%td", value_date_format="%td",
        datetime_format="%tc", epoch_offset_days=3_653, date_unit_seconds=1, datetime_scale=1_000,
        number_range=None, max_columns=None,
        value_labels=True,
        write=pyreadstat.write_dta,
        write_options=(("version", 15),)),
}
