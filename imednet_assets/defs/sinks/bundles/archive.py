"""Deterministic zip archives: the same members in the same order give the same bytes.

Every member gets a fixed timestamp (1980-01-01, the zip epoch) and mode 0644, so replaying a
study whose data did not change writes an identical file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6


def open_archive(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(
        path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
    )


def open_member(archive: zipfile.ZipFile, name: str) -> IO[bytes]:
    """A member to stream into (its size need not be known: zip64 sizes are always written)."""
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return archive.open(info, "w", force_zip64=True)
