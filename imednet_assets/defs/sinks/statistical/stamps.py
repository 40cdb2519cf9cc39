"""Fixed creation times in the files' headers, so that writing the same data gives the same bytes.

ReadStat stamps every file with the clock (pyreadstat has no option for it); the stamp is
overwritten here with the time the lake slices were written (`extraction_time`), in each
format's own layout. A header that is not where ReadStat puts it is an error, never a guess.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from imednet_assets.defs.sinks.statistical.formats import StatFormat

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
# XPT v5: library header (created, modified) and member header (created, modified), 80-byte
# records; SAV: creation date and time in the file header; DTA: the <timestamp> element
_XPT_FIELDS = (144, 160, 464, 480)
_SAV_DATE, _SAV_TIME = 92, 101
_DTA_TAG = b"<timestamp>"


def _xpt(when: dt.datetime) -> bytes:
    return f"{when:%d}{_MONTHS[when.month - 1]}{when:%y:%H:%M:%S}".encode()


def stamp_file(path: Path, fmt: StatFormat, when: dt.datetime) -> None:
    """Overwrite the creation time in `path`'s header with `when`."""
    with path.open("r+b") as f:
        head = bytearray(f.read(1024))
        if fmt == "xpt":
            for at in _XPT_FIELDS:
                if not _XPT_STAMP.fullmatch(bytes(head[at:at + 16])):
                    raise ValueError(f"{path.name}: no XPT time stamp at byte {at}")
                head[at:at + 16] = _xpt(when)
        elif fmt == "sav":
            date = f"{when:%d} {_MONTHS[when.month - 1].title()} {when:%y}".encode()
            if not re.fullmatch(rb"\d\d \w{3} \d\d\d\d:\d\d:\d\d",
                                bytes(head[_SAV_DATE:_SAV_TIME + 8])):
                raise ValueError(f"{path.name}: no SPSS time stamp at byte {_SAV_DATE}")
            head[_SAV_DATE:_SAV_TIME + 8] = date + f"{when:%H:%M:%S}".encode()
        else:
            at = head.find(_DTA_TAG)
            if at < 0 or head[at + len(_DTA_TAG)] != 17:
                raise ValueError(f"{path.name}: no Stata time stamp in the header")
            start = at + len(_DTA_TAG) + 1
            text = f"{when:%d} {_MONTHS[when.month - 1].title()} {when:%Y %H:%M}".encode()
            head[start:start + 17] = text
        f.seek(0)
        f.write(head)
