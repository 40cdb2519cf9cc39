"""The `filter` / `recordDataFilter` grammar: parsing to OR-of-ANDs and vectorised evaluation.

`a==1;b>2,c!=3` means `(a==1 AND b>2) OR c!=3` (AND binds tighter, as in RSQL). Values may be
wrapped in one pair of double quotes (`\\"` and `\\\\` un-escaped), as the imednet SDK sends them.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np


class FilterError(ValueError):
    """An invalid filter; `attribute` is the request parameter to blame (400 code 1000)."""

    def __init__(self, message: str, attribute: str = "filter", value: str = "") -> None:
        super().__init__(message)
        self.attribute = attribute
        self.value = value


@dataclass(frozen=True)
class Term:
    attr: str
    op: str
    value: str


Clauses = list[list[Term]]  # OR of ANDs

_TERM = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(<=|>=|==|!=|=~|<|>)\s*(.*?)\s*$", re.S)
_WORD = re.compile(r"\s+(and|or|AND|OR)\s+")
OPS: dict[str, Callable] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _split(text: str) -> tuple[list[list[str]], set[str]]:
    """Split on connectors outside quotes; return OR-groups of AND-terms and the connectors seen."""
    groups: list[list[str]] = [[]]
    seen: set[str] = set()
    buf: list[str] = []
    i, quoted = 0, False
    while i < len(text):
        ch = text[i]
        if quoted:
            buf.append(ch)
            if ch == "\\" and i + 1 < len(text):
                buf.append(text[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
            i += 1
            continue
        m = _WORD.match(text, i)
        conn = ";" if ch == ";" else "," if ch == "," else None
        if m:
            conn = "and" if m.group(1).lower() == "and" else "or"
        if conn:
            groups[-1].append("".join(buf))
            buf = []
            seen.add(conn)
            if conn in (",", "or"):
                groups.append([])
            i = m.end() if m else i + 1
            continue
        if ch == '"':
            quoted = True
        buf.append(ch)
        i += 1
    if quoted:
        raise FilterError("unterminated quote", value=text)
    groups[-1].append("".join(buf))
    return groups, seen


def unquote(value: str) -> str:
    """Strip one pair of surrounding double quotes and un-escape `\\"` and `\\\\`."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse(text: str, *, attribute: str = "filter", regex_op: bool = False) -> Clauses:
    """Parse a filter string; raise FilterError (naming `attribute`) when it is invalid."""
    groups, seen = _split(text)
    if attribute == "recordDataFilter" and ";" in seen and "," in seen:
        raise FilterError("recordDataFilter cannot mix ';' and ','", attribute, text)
    clauses: Clauses = []
    for group in groups:
        terms = []
        for raw in group:
            m = _TERM.match(raw)
            if not m or (m.group(2) == "=~" and not regex_op):
                raise FilterError(f"invalid filter term {raw!r}", attribute, text)
            terms.append(Term(m.group(1), m.group(2), unquote(m.group(3))))
        clauses.append(terms)
    return clauses


_TS_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S")


def ts_epoch(value: str) -> int:
    """Filter or stored timestamp -> epoch seconds (UTC); `T...Z`, offsets and the space form."""
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    for fmt in _TS_FORMATS:
        try:
            d = datetime.strptime(v, fmt)
        except ValueError:
            continue
        if d.tzinfo is None:
            d = d.replace(tzinfo=UTC)
        return int(d.timestamp())
    raise ValueError(value)


def coerce(kind: str, value: str):
    """The filter value typed like the attribute; ValueError when it cannot be."""
    if kind == "int" or kind == "float":
        return float(value)
    if kind == "bool":
        low = value.lower()
        if low not in ("true", "false"):
            raise ValueError(value)
        return low == "true"
    if kind == "ts":
        return ts_epoch(value)
    if kind == "date":
        datetime.strptime(value, "%Y-%m-%d")
        return value
    return value


def normalise(kind: str, col: np.ndarray) -> np.ndarray:
    """A column in its comparable form (epoch ints for timestamps, floats for numbers...)."""
    if col.dtype != object:
        return col
    if kind == "ts":
        return _stored_epochs(col)
    if kind in ("int", "float"):
        return np.array([np.nan if x is None else float(x) for x in col], dtype=float)
    if kind == "bool":
        return col.astype(bool)
    return np.array(["" if x is None else str(x) for x in col], dtype=object)


def _stored_epochs(col: np.ndarray) -> np.ndarray:
    """Stored timestamps (the API's `YYYY-MM-DD HH:MM:SS`, UTC; empty = -1) as epoch seconds,
    parsed by numpy in one pass; any other form goes through `ts_epoch` one by one."""
    present = np.array([bool(x) for x in col], dtype=bool)
    out = np.full(len(col), -1, dtype=np.int64)
    values = col[present]
    if all(len(x) == 19 and x[10] == " " for x in values):
        out[present] = values.astype("datetime64[s]").astype(np.int64)
    else:
        cache: dict = {}
        out[present] = [cache.setdefault(x, ts_epoch(x)) for x in values]
    return out


def compare(col: np.ndarray, op: str, value) -> np.ndarray:
    """Vectorised `col <op> value` as a boolean mask."""
    with np.errstate(invalid="ignore"):
        return np.asarray(OPS[op](col, value), dtype=bool)


def _num(x: str) -> float | None:
    try:
        return float(x)
    except ValueError:
        return None


def match_data(clauses: Clauses, data: dict[str, str]) -> bool:
    """recordDataFilter on one recordData dict: numbers compare numerically, `=~` is a regex."""
    for terms in clauses:
        ok = True
        for t in terms:
            v = data.get(t.attr)
            if v is None:
                ok = False
            elif t.op == "=~":
                ok = re.search(t.value, str(v), re.I) is not None
            else:
                a, b = _num(str(v)), _num(t.value)
                ok = OPS[t.op](a, b) if a is not None and b is not None else OPS[t.op](
                    str(v), t.value)
            if not ok:
                break
        if ok:
            return True
    return False


def check_regexes(clauses: Clauses) -> None:
    for terms in clauses:
        for t in terms:
            if t.op == "=~":
                try:
                    re.compile(t.value)
                except re.error as exc:
                    raise FilterError(f"invalid regex {t.value!r}", "recordDataFilter",
                                      t.value) from exc
