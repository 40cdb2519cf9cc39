"""Deterministic short names, labels and value pieces for the statistical formats.

Names: the DuckDB column name (already `[A-Za-z0-9_]`, see `duckdb.naming.normalise`) with a
leading `_` turned into `v_` (SPSS and SAS names start with a letter), in upper case for SAS. A
name within the format's limit is kept; a longer one keeps its start and ends in a digest of the
full original name (3 base-36 characters for SAS's 8, `_` + 8 hex digits otherwise), so it does
not depend on the other names. A name taken already (case-insensitively) or reserved by the
software gets `_2`, `_3`, ... in place of its last characters, in column order (a suffix no
reserved word has, so the search always ends).

Labels are cut to the format's limit at a character boundary, without trailing blanks. Text over
the format's value limit is split into pieces at character boundaries (see `split_text`); the
mapping records all of it.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable

from imednet_assets.defs.sinks.duckdb.naming import normalise
from imednet_assets.defs.sinks.statistical.formats import FormatRules

_BASE36 = string.digits + string.ascii_uppercase
_STATA_STR = re.compile(r"^str([1-9][0-9]*|l)$", re.IGNORECASE)


def _digest36(text: str, width: int) -> str:
    number = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")
    out = ""
    for _ in range(width):
        number, rest = divmod(number, 36)
        out += _BASE36[rest]
    return out


def base_name(name: str, rules: FormatRules) -> str:
    """`name` as an identifier every format accepts: ASCII, starting with a letter."""
    cleaned = normalise(name)
    if not cleaned[0].isalpha():
        cleaned = "v" + cleaned
    return cleaned.upper() if rules.upper else cleaned


def shortened(name: str, rules: FormatRules) -> str:
    """`name` (already a base name) within the format's limit, with the digest rule above."""
    limit = rules.name_max
    if len(name) <= limit:
        return name
    if limit <= 8:
        return name[: limit - 3] + _digest36(name, 3)
    return name[: limit - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


class ShortNames:
    """Hands out a dataset's (or a study's datasets') names, unique case-insensitively."""

    def __init__(self, rules: FormatRules, reserved: Iterable[str] = ()) -> None:
        self.rules = rules
        self._taken = {n.lower() for n in reserved} | set(rules.reserved)

    def _free(self, name: str) -> bool:
        return name.lower() not in self._taken and not _STATA_STR.match(name)

    def take(self, original: str) -> str:
        """The short name of `original` (any text)."""
        return self._claim(shortened(base_name(original, self.rules), self.rules))

    def take_part(self, short: str, part: int) -> str:
        """The name of piece `part` (2, 3, ...) of the column named `short`."""
        return self._claim(self._with_suffix(short, str(part)))

    def _with_suffix(self, name: str, suffix: str) -> str:
        return name[: self.rules.name_max - len(suffix)] + suffix

    def _claim(self, name: str) -> str:
        candidate, n = name, 1
        while not self._free(candidate):
            n += 1
            candidate = self._with_suffix(name, f"_{n}")
        self._taken.add(candidate.lower())
        return candidate


def cut_bytes(text: str, limit: int) -> str:
    """The longest start of `text` within `limit` bytes of UTF-8 (never half a character)."""
    return text.encode()[:limit].decode(errors="ignore")


def short_label(label: str, limit: int, suffix: str = "") -> str:
    """`label` cut to `limit` bytes with `suffix` kept; no trailing blanks (SAS and SPSS drop
    them, and the label must read back as the mapping says)."""
    return cut_bytes(label, limit - len(suffix.encode())).rstrip(" ") + suffix


class Unsplittable(ValueError):
    """A text that cannot be cut into pieces without losing blanks (a run of blanks longer than a
    piece, in a format that drops trailing blanks)."""


def split_text(text: str, limit: int, keeps_trailing_blanks: bool) -> list[str]:
    """`text` in pieces of at most `limit` bytes of UTF-8, cut between characters, whose
    concatenation is `text`. Where the format drops trailing blanks, no piece but the last ends
    in a blank (the cut moves back before the blanks), so nothing inside the value is lost."""
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while len(data) - start > limit:
        cut = start + limit
        while cut > start and (data[cut] & 0xC0) == 0x80:  # inside a character
            cut -= 1
        if not keeps_trailing_blanks:
            while cut > start and data[cut - 1] == 0x20:
                cut -= 1
        if cut == start:
            raise Unsplittable(f"more than {limit} bytes of blanks in a row")
        pieces.append(data[start:cut].decode())
        start = cut
    pieces.append(data[start:].decode())
    return pieces
