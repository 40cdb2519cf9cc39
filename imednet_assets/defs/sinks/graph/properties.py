"""Graph property names and values: what a lake value becomes on a node.

Names: a record-data key that is a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`) and not one of the
record's own properties stays as it is; any other key becomes `<folded>_<8 hex of its SHA-1>`, so
the name depends on the key alone (stable across studies and replays, no clash resolution needed).
The mapping is kept on the `Variable` node (`property_name`).
Values: property graphs take numbers, strings, booleans and homogeneous lists of those; nested maps
and nulls are not values. Record data is typed by the dictionary's variableType; anything that does
not parse keeps the API's text, so no answer is ever lost.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from imednet_assets.client.arrow import SCHEMAS

#: Properties every node gets from the writer (never taken by record data).
LOAD_ID = "load_id"
ROW_HASH = "row_hash"
#: A node's identity as one string, `["<study_key>", key values...]` in JSON: what MERGE and
#: relationship endpoints look nodes up by (unique across studies, one string index per label).
NODE_KEY = "node_key"
#: Record-data keys must not overwrite the record's envelope or the writer's own properties.
RESERVED: frozenset[str] = frozenset(SCHEMAS["records"].names) | {LOAD_ID, ROW_HASH, NODE_KEY}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NON_IDENT = re.compile(r"[^A-Za-z0-9_]+")
_INT = re.compile(r"^[+-]?\d{1,18}$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$")

Value = str | int | float | bool | list


def property_name(key: str) -> str:
    """The node property that holds record-data key `key` (see module docstring)."""
    if _IDENTIFIER.match(key) and key not in RESERVED:
        return key
    folded = _NON_IDENT.sub("_", key).strip("_")[:40] or "v"
    if folded[0].isdigit():
        folded = f"v_{folded}"
    return f"{folded}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def _list_value(text: str) -> list | None:
    """A JSON array of primitives of one kind (Neo4j stores only homogeneous lists), else None."""
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(items, list) or not items:
        return None
    if all(isinstance(i, str) for i in items):
        # a NUL inside is fine in JSON text (`\u0000`) but no native FalkorDB string holds it
        return None if any("\x00" in i for i in items) else items
    if all(isinstance(i, bool) for i in items):
        return items
    if all(isinstance(i, int | float) and not isinstance(i, bool) for i in items):
        if all(isinstance(i, int) for i in items):
            return items
        return [float(i) for i in items] if all(math.isfinite(i) for i in items) else None
    return None


def data_value(text: str | None, variable_type: str | None) -> Value | None:
    """One recordData answer as a property value, typed by its variableType.

    NUMBER -> int/float, CHECKBOX `true`/`false` -> bool, DATE stays `YYYY-MM-DD`, DATETIME ->
    `YYYY-MM-DDTHH:MM:SS` (ISO), a JSON array of primitives -> a list; blanks and anything that does
    not parse (`"ND"`) keep their text. None (a JSON null) -> None: no property.
    """
    if text is None:
        return None
    kind = (variable_type or "").strip().upper()
    if text.startswith("["):
        items = _list_value(text)
        if items is not None:
            return items
    if kind == "NUMBER":
        if _INT.match(text):
            return int(text)
        if _DECIMAL.match(text) and math.isfinite(number := float(text)):
            return number  # `1e999` is inf: not a value every server stores, so text kept
    elif kind == "CHECKBOX":
        low = text.strip().lower()
        if low in ("true", "false"):
            return low == "true"
    elif kind == "DATETIME" and _DATETIME.match(text):
        try:
            return dt.datetime.fromisoformat(text.replace(" ", "T")).isoformat()
        except ValueError:
            return text
    elif kind == "DATE" and _DATE.match(text):
        return text
    return text


def plain_value(value: Any) -> Value | None:
    """A lake column value as a property value: timestamps/dates as ISO text, nested values
    (keywords, query comments) as JSON text, empty lists and nulls dropped."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        if not value:
            return None
        return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()
    return str(value)


def entity_props(row: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Value]:
    """Node properties of one lake row (every column but `skip`; nulls left out)."""
    props: dict[str, Value] = {}
    for column, value in row.items():
        if column in skip:
            continue
        converted = plain_value(value)
        if converted is not None:
            props[column] = converted
    return props


def with_hash(props: dict[str, Value]) -> dict[str, Value]:
    """`props` plus `row_hash`, a digest of them: an unchanged node is recognised server-side."""
    digest = hashlib.blake2b(orjson.dumps(props, option=orjson.OPT_SORT_KEYS), digest_size=12)
    props[ROW_HASH] = digest.hexdigest()
    return props
