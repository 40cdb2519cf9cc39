"""Pure naming rules of the ODM export: OIDs derived from the EDC's keys, ODM data types from the
variable types, and text made fit for XML 1.0.

OIDs are `<prefix>.<key>[.<key>]` with every key percent-encoded (UTF-8 bytes; everything but
ASCII letters, digits, `-` and `_` is encoded, `.` and `%` included), so OIDs never hold spaces,
quotes or markup, the `.` between parts is unambiguous, and two keys never share an OID.

XML 1.0 cannot hold most C0 control characters (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F),
U+FFFE, U+FFFF or lone surrogates, not even as character references. Each one becomes U+FFFD
(the replacement character) and is counted, so a reader sees where a character was dropped;
everything else (tab, line breaks, quotes, `<`, `&`, any other Unicode) is written exactly.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

#: variableType (case-insensitive) -> ODM 1.3.2 DataType; anything else is `text`. The same
#: variable types as the DuckDB sink's typed columns (`duckdb.naming.TYPE_MAP`).
DATA_TYPES: dict[str, str] = {
    "NUMBER": "float",
    "DATE": "date",
    "DATETIME": "datetime",
    "CHECKBOX": "boolean",
}

REPLACEMENT = "\ufffd"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# the same class for Arrow's RE2 (valid UTF-8 holds no surrogates)
_NOT_XML_RE2 = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"


# the API's "YYYY-MM-DD HH:MM:SS" (ASCII digits): ISO 8601 wants a `T` between date and time
_API_DATETIME = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}) ([0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?)")


def odm_value(value: str, odm_type: str) -> str:
    """A value as ODM writes it: a `datetime` item's `YYYY-MM-DD HH:MM:SS` in ISO 8601 form
    (`T` for the space, as ODM's datetime requires); everything else exactly as the API sent it
    (a value that does not fit its type, like `ND` in a number, stays as entered)."""
    if odm_type == "datetime":
        found = _API_DATETIME.fullmatch(value)
        if found:
            return f"{found[1]}T{found[2]}"
    return value


def key_part(key: object) -> str:
    """One key as an OID part: percent-encoded, `.` and `~` too (empty stays empty)."""
    text = "" if key is None else str(key)
    return quote(text, safe="").replace(".", "%2E").replace("~", "%7E")


def oid(prefix: str, *keys: object) -> str:
    """`<prefix>.<key>...`, each key encoded by `key_part`: deterministic and injective."""
    return ".".join([prefix, *(key_part(k) for k in keys)])


def data_type(variable_type: str | None) -> str:
    """The ODM DataType of an iMednet variableType (unknown or missing: `text`)."""
    return DATA_TYPES.get((variable_type or "").strip().upper(), "text")


class XmlText:
    """Makes text fit for XML 1.0 and counts the characters it had to replace."""

    def __init__(self) -> None:
        self.replaced = 0

    def __call__(self, value: object) -> str:
        text = "" if value is None else str(value)
        if not _NOT_XML.search(text):  # the common case: no copy, no count
            return text
        text, n = _NOT_XML.subn(REPLACEMENT, text)
        self.replaced += n
        return text


def xml_strings(values: pa.Array) -> tuple[pa.Array, int]:
    """A string array made fit for XML 1.0 at once (Arrow, not Python per value), and how many
    characters were replaced."""
    found = pc.sum(pc.count_substring_regex(values, _NOT_XML_RE2)).as_py() or 0
    if not found:
        return values, 0
    return pc.replace_substring_regex(values, _NOT_XML_RE2, REPLACEMENT), found


def xml_map(values: pa.MapArray) -> tuple[pa.MapArray, int]:
    """A map<string, string> column with its values made fit for XML 1.0 (keys stay: they are
    matched with the variable names, and only OIDs derived from them are written)."""
    items, found = xml_strings(values.items)
    if not found:
        return values, 0
    return pa.MapArray.from_arrays(values.offsets, values.keys, items,
                                   mask=values.is_null()), found


def xml_text(value: object) -> str:
    """`value` as XML 1.0 text, without counting (see `XmlText`)."""
    return _NOT_XML.sub(REPLACEMENT, "" if value is None else str(value))


def odm_datetime(value: dt.datetime) -> str:
    """A lake timestamp (naive, UTC as the API gives it) as an ODM datetime with its zone."""
    return value.isoformat(timespec="seconds") + "Z"  # four-digit years, as xs:dateTime wants
