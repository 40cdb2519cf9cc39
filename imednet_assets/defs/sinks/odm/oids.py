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


def xml_text(value: object) -> str:
    """`value` as XML 1.0 text, without counting (see `XmlText`)."""
    return _NOT_XML.sub(REPLACEMENT, "" if value is None else str(value))


def odm_datetime(value: dt.datetime) -> str:
    """A lake timestamp (naive, UTC as the API gives it) as an ODM datetime with its zone."""
    return value.replace(microsecond=0).isoformat() + "Z"
