"""Safe builders for the `filter` and `recordDataFilter` query strings (pure text functions).

Attribute names and operators are validated, values are rendered and quoted like the imednet SDK
(anything outside `[A-Za-z0-9_.-]` is wrapped in double quotes with `\\` and `"` escaped), so a
value can never inject another term or connector.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

OPERATORS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=")
RECORD_DATA_OPERATORS: tuple[str, ...] = (*OPERATORS, "=~")  # =~ "contains": recordDataFilter only

_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_.-]+$")
_CONNECTORS = {"and": ";", "or": ","}

Value = str | int | float | bool | date | datetime


def format_value(value: Value) -> str:
    """Render one value: datetimes as `YYYY-MM-DDTHH:MM:SSZ` (UTC), booleans as true/false."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        # naive datetimes are taken as UTC, the API's only zone
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        text = aware.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        raise TypeError(f"unsupported filter value type {type(value).__name__}: {value!r}")
    return text if _PLAIN_VALUE.match(text) else quote(text)


def quote(text: str) -> str:
    """Double-quote `text`, backslash-escaping `\\` and `"`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Term:
    """One validated `<attribute><operator><value>` term; `str(term)` is its wire text."""

    attribute: str
    operator: str
    value: str  # already rendered and quoted

    def __str__(self) -> str:
        return f"{self.attribute}{self.operator}{self.value}"


def term(attribute: str, operator: str, value: Value, *, record_data: bool = False) -> Term:
    """Build one term; `record_data=True` also allows `=~` (recordDataFilter only)."""
    if not isinstance(attribute, str) or not _ATTRIBUTE.match(attribute):
        raise ValueError(f"invalid filter attribute name: {attribute!r}")
    allowed = RECORD_DATA_OPERATORS if record_data else OPERATORS
    if operator not in allowed:
        raise ValueError(f"invalid filter operator {operator!r} (allowed: {' '.join(allowed)})")
    return Term(attribute, operator, format_value(value))


def _join(terms: tuple[Term, ...], mode: str, what: str) -> str:
    """Check the terms and join them with one connector: `;` (and) or `,` (or)."""
    if mode not in _CONNECTORS:
        raise ValueError(f"mode must be 'and' or 'or', got {mode!r}")
    if not terms:
        raise ValueError(f"a {what} needs at least one term")
    for t in terms:
        if not isinstance(t, Term):
            raise TypeError(f"filter terms must be built with term(), got {type(t).__name__}")
    return _CONNECTORS[mode].join(str(t) for t in terms)


def build_filter(*terms: Term, mode: Literal["and", "or"] = "and") -> str:
    """Join terms with `;` (and) or `,` (or) into a `filter` value."""
    if any(isinstance(t, Term) and t.operator == "=~" for t in terms):
        raise ValueError("operator '=~' is only allowed in recordDataFilter")
    return _join(terms, mode, "filter")


def build_record_data_filter(*terms: Term, mode: Literal["and", "or"] = "and") -> str:
    """Join recordData terms with one connector only (the API answers 400 to a mix)."""
    return _join(terms, mode, "recordDataFilter")


def check_record_data_filter(text: str) -> str:
    """Refuse a recordDataFilter string mixing `;` and `,` outside quoted values."""
    seen: set[str] = set()
    in_quotes = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and in_quotes:
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif not in_quotes and ch in ";,":
            seen.add(ch)
    if len(seen) > 1:
        raise ValueError(f"recordDataFilter may not mix ';' and ',': {text!r}")
    return text
