"""JSON pages -> Arrow record batches in fixed, explicit per-entity schemas (the hot path).

Columns are built directly from per-field value lists; timestamps and dates are parsed by
`pyarrow.compute.strptime`, never row by row in Python.

Rules (docs/design.md): snake_case names, `study_key` first in every table, `extra` last (JSON text
of the fields the schema does not know, sorted keys, null when none; a nested list whose items carry
unknown keys is kept whole in `extra` too). `records.record_data` is `map<string, string>` keeping
every key; non-string JSON values become their JSON text, null stays null.

Bad values: a value that does not fit its column (a string in an id, a timestamp in another format)
raises `ImednetMalformedResponse` naming entity, study, field, row and value. The schema is the
contract with every sink; a silent null would be indistinguishable from a missing answer. The only
leniency: an empty string in a timestamp or date field is read as null (the API's blank).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from imednet_assets.client.errors import ImednetMalformedResponse, target

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError)


def snake(name: str) -> str:
    """`recordId` -> `record_id`."""
    return _CAMEL.sub("_", name).lower()


@dataclass(frozen=True)
class Field:
    """One API field: its JSON name, kind, and (for list kinds) the item fields."""

    api: str
    kind: str  # str | int | bool | ts | date | role_ts | map | list
    children: tuple[Field, ...] = ()

    @property
    def name(self) -> str:
        return snake(self.api)


def _f(api: str, kind: str = "str", *children: Field) -> Field:
    return Field(api, kind, children)


def _ts(*names: str) -> list[Field]:
    return [_f(n, "ts") for n in names]


_CREATED_MODIFIED = _ts("dateCreated", "dateModified")
_KEYWORDS = _f(
    "keywords",
    "list",
    _f("keywordName"),
    _f("keywordKey"),
    _f("keywordId", "int"),
    _f("dateAdded", "ts"),
)

# entity -> fields in the API's documented order (imednet-api.md §5); studyKey -> study_key
FIELDS: dict[str, tuple[Field, ...]] = {
    "studies": (
        _f("sponsorKey"), _f("studyKey"), _f("studyId", "int"), _f("studyName"),
        _f("studyDescription"), _f("studyType"), *_CREATED_MODIFIED,
    ),
    "sites": (
        _f("studyKey"), _f("siteId", "int"), _f("siteName"), _f("siteEnrollmentStatus"),
        *_CREATED_MODIFIED,
    ),
    "subjects": (
        _f("studyKey"), _f("subjectId", "int"), _f("subjectOid"), _f("subjectKey"),
        _f("subjectStatus"), _f("siteId", "int"), _f("siteName"), _f("deleted", "bool"),
        _f("enrollmentStartDate", "ts"), *_CREATED_MODIFIED, _KEYWORDS,
    ),
    "intervals": (
        _f("studyKey"), _f("intervalId", "int"), _f("intervalName"), _f("intervalDescription"),
        _f("intervalSequence", "int"), _f("intervalGroupId", "int"), _f("intervalGroupName"),
        _f("timeline"), _f("definedUsingInterval"), _f("windowCalculationForm"),
        _f("windowCalculationDate"), _f("actualDateForm"), _f("actualDate"),
        _f("dueDateWillBeIn", "int"), _f("negativeSlack", "int"), _f("positiveSlack", "int"),
        _f("eproGracePeriod", "int"),
        _f("forms", "list", _f("formId", "int"), _f("formKey"), _f("formName")),
        _f("disabled", "bool"), *_CREATED_MODIFIED,
    ),
    "forms": (
        _f("studyKey"), _f("formId", "int"), _f("formKey"), _f("formName"), _f("formType"),
        _f("revision", "int"), _f("embeddedLog", "bool"), _f("enforceOwnership", "bool"),
        _f("userAgreement", "bool"), _f("subjectRecordReport", "bool"),
        _f("unscheduledVisit", "bool"), _f("otherForms", "bool"), _f("eproForm", "bool"),
        _f("allowCopy", "bool"), _f("disabled", "bool"), *_CREATED_MODIFIED,
    ),
    "variables": (
        _f("studyKey"), _f("variableId", "int"), _f("variableType"), _f("variableName"),
        _f("sequence", "int"), _f("revision", "int"), _f("disabled", "bool"), *_CREATED_MODIFIED,
        _f("formId", "int"), _f("variableOid"), _f("deleted", "bool"), _f("formKey"),
        _f("formName"), _f("label"), _f("blinded", "bool"),
    ),
    "visits": (
        _f("visitId", "int"), _f("studyKey"), _f("intervalId", "int"), _f("intervalName"),
        _f("subjectId", "int"), _f("subjectKey"), _f("startDate", "date"), _f("endDate", "date"),
        _f("dueDate", "date"), _f("visitDate", "date"), _f("visitDateForm"),
        _f("visitDateQuestion"), _f("deleted", "bool"), *_CREATED_MODIFIED,
    ),
    "records": (
        _f("studyKey"), _f("intervalId", "int"), _f("formId", "int"), _f("formKey"),
        _f("siteId", "int"), _f("recordId", "int"), _f("recordOid"), _f("recordType"),
        _f("recordStatus"), _f("deleted", "bool"), *_CREATED_MODIFIED, _f("subjectId", "int"),
        _f("subjectOid"), _f("subjectKey"), _f("visitId", "int"), _f("parentRecordId", "int"),
        _KEYWORDS, _f("recordData", "map"),
    ),
    "record_revisions": (
        _f("studyKey"), _f("recordRevisionId", "int"), _f("recordId", "int"), _f("recordOid"),
        _f("recordRevision", "int"), _f("dataRevision", "int"), _f("recordStatus"),
        _f("subjectId", "int"), _f("subjectOid"), _f("subjectKey"), _f("siteId", "int"),
        _f("formKey"), _f("intervalId", "int"), _f("role"), _f("user"), _f("reasonForChange"),
        _f("deleted", "bool"), _f("dateCreated", "ts"),
    ),
    "queries": (
        _f("studyKey"), _f("subjectId", "int"), _f("subjectOid"), _f("annotationType"),
        _f("annotationId", "int"), _f("type"), _f("description"), _f("recordId", "int"),
        _f("variable"), _f("subjectKey"), *_CREATED_MODIFIED,
        _f(
            "queryComments", "list", _f("sequence", "int"), _f("annotationStatus"), _f("user"),
            _f("comment"), _f("closed", "bool"), _f("date", "ts"),
        ),
    ),
    "codings": (
        _f("studyKey"), _f("siteName"), _f("siteId", "int"), _f("subjectId", "int"),
        _f("subjectKey"), _f("formId", "int"), _f("formName"), _f("formKey"),
        _f("revision", "int"), _f("recordId", "int"), _f("variable"), _f("value"),
        _f("codingId", "int"), _f("code"), _f("codedBy"), _f("reason"), _f("dictionaryName"),
        _f("dictionaryVersion"), _f("dateCoded", "ts"),
    ),
    "users": (
        _f("userId"), _f("login"), _f("firstName"), _f("lastName"), _f("email"),
        _f("userActiveInStudy", "bool"),
        _f(
            "roles", "list", _f("dateCreated", "role_ts"), _f("dateModified", "role_ts"),
            _f("roleId"), _f("communityId", "int"), _f("name"), _f("description"),
            _f("level", "int"), _f("type"), _f("inactive", "bool"),
        ),
    ),
}  # fmt: skip

# entity name (snake_case) -> API endpoint name
ENDPOINTS: dict[str, str] = {e: e for e in FIELDS} | {"record_revisions": "recordRevisions"}

_SCALAR_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "ts": pa.timestamp("s"),
    "role_ts": pa.timestamp("s"),
    "date": pa.date32(),
    "map": pa.map_(pa.string(), pa.string()),
}


def arrow_type(field: Field) -> pa.DataType:
    if field.kind == "list":
        return pa.list_(pa.struct([pa.field(c.name, arrow_type(c)) for c in field.children]))
    return _SCALAR_TYPES[field.kind]


def _schema(fields: tuple[Field, ...]) -> pa.Schema:
    cols = [pa.field("study_key", pa.string())]
    cols += [pa.field(f.name, arrow_type(f)) for f in fields if f.api != "studyKey"]
    cols.append(pa.field("extra", pa.string()))
    return pa.schema(cols)


SCHEMAS: dict[str, pa.Schema] = {entity: _schema(fields) for entity, fields in FIELDS.items()}


class _Ctx:
    """Where a conversion happens, for error messages."""

    def __init__(self, entity: str, study_key: str | None) -> None:
        self.entity = entity
        self.study_key = study_key
        self.owners: list[int] | None = None  # inside a nested list: flat item -> page row

    def bad(self, path: str, row: int, value: Any, expected: str) -> ImednetMalformedResponse:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return ImednetMalformedResponse(
            f"{target(ENDPOINTS[self.entity], self.study_key)}: field {path} of row "
            f"{row if self.owners is None else self.owners[row]} "
            f"is not {expected}: {shown}",
            endpoint=ENDPOINTS[self.entity],
            study_key=self.study_key,
        )


def _fits(kind: str, value: Any) -> bool:
    if kind == "int":
        if type(value) is float and value.is_integer():
            value = int(value)
        return type(value) is int and -(2**63) <= value < 2**63
    return type(value) is {"str": str, "bool": bool}[kind]


def _first_misfit(values: list[Any], kind: str) -> int:
    """Index of the first value that cannot go into a `kind` column (0 if none found)."""
    return next((i for i, v in enumerate(values) if v is not None and not _fits(kind, v)), 0)


def _scalar(field: Field, path: str, values: list[Any], ctx: _Ctx) -> pa.Array:
    expected = {"str": "a string", "int": "an integer", "bool": "a boolean"}[field.kind]
    try:
        return pa.array(values, _SCALAR_TYPES[field.kind])
    except _ARROW_ERRORS:
        i = _first_misfit(values, field.kind)  # 0 also covers an integer beyond int64
        raise ctx.bad(path, i, values[i], expected) from None


def _parsed(field: Field, path: str, values: list[Any], fmt: str, ctx: _Ctx) -> pa.Array:
    """Strings -> timestamp[s] via strptime; '' counts as null; anything unparsable raises."""
    expected = f"a {'date' if fmt == DATE_FORMAT else 'timestamp'} like {fmt}"
    try:
        raw = pa.array(values, pa.string())
    except _ARROW_ERRORS:
        i = _first_misfit(values, "str")
        raise ctx.bad(path, i, values[i], expected) from None
    raw = pc.if_else(pc.equal(raw, ""), pa.scalar(None, pa.string()), raw)
    parsed = pc.strptime(raw, format=fmt, unit="s", error_is_null=True)
    if parsed.null_count != raw.null_count:
        bad = pc.and_(pc.is_null(parsed), pc.is_valid(raw))
        i = pc.index(bad, True).as_py()
        raise ctx.bad(path, i, values[i], expected)
    return parsed


def _role_ts(path: str, values: list[Any], ctx: _Ctx) -> pa.Array:
    """Role dates: Jackson arrays [y, m, d, h, mi, s, nanos] or text (users are few: Python)."""
    out: list[datetime | None] = []
    for i, v in enumerate(values):
        try:
            if v is None or v == "":
                out.append(None)
            elif isinstance(v, list) and 3 <= len(v) <= 7:
                out.append(datetime(*(list(v[:6]) + [0] * (6 - min(len(v), 6)))))
            elif isinstance(v, str):
                when = datetime.fromisoformat(v)
                if when.tzinfo is not None:
                    when = when.astimezone(UTC).replace(tzinfo=None)
                out.append(when.replace(microsecond=0))
            else:
                raise ValueError(v)
        except (TypeError, ValueError):
            raise ctx.bad(path, i, v, "a date array or timestamp") from None
    return pa.array(out, pa.timestamp("s"))


def _map(path: str, values: list[Any], ctx: _Ctx) -> pa.Array:
    """recordData dicts -> map<string,string>, keeping every key; non-strings as JSON text."""
    offsets = [0]
    keys: list[str] = []
    items: list[Any] = []
    nulls: list[bool] = []
    for i, v in enumerate(values):
        if v is None:
            nulls.append(True)
        elif type(v) is dict:
            nulls.append(False)
            keys.extend(v)
            items.extend(v.values())
        else:
            raise ctx.bad(path, i, v, "an object")
        offsets.append(len(keys))
    try:
        item_array = pa.array(items, pa.string())
    except _ARROW_ERRORS:
        # rare: numbers/booleans/objects in recordData keep their JSON spelling
        item_array = pa.array(
            [x if x is None or type(x) is str else orjson.dumps(x).decode() for x in items],
            pa.string(),
        )
    mask = pa.array(nulls, pa.bool_()) if any(nulls) else None
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(keys, pa.string()),
        item_array,
        type=_SCALAR_TYPES["map"],
        mask=mask,
    )


def _list(field: Field, path: str, values: list[Any], ctx: _Ctx) -> pa.Array:
    """Lists of objects -> list<struct>, children converted column-wise like top-level fields."""
    offsets = [0]
    flat: list[Any] = []
    owners: list[int] = []
    nulls: list[bool] = []
    for i, v in enumerate(values):
        if v is None:
            nulls.append(True)
        elif type(v) is list:
            nulls.append(False)
            for item in v:
                if type(item) is not dict:
                    raise ctx.bad(path, i, item, "a list of objects")
            flat.extend(v)
            owners.extend([i if ctx.owners is None else ctx.owners[i]] * len(v))
        else:
            raise ctx.bad(path, i, v, "a list")
        offsets.append(len(flat))
    outer, ctx.owners = ctx.owners, owners
    try:
        children = [
            _column(c, f"{path}[].{c.api}", [item.get(c.api) for item in flat], ctx)
            for c in field.children
        ]
    finally:
        ctx.owners = outer
    struct_type = arrow_type(field).value_type
    structs = pa.StructArray.from_arrays(children, fields=list(struct_type))
    mask = pa.array(nulls, pa.bool_()) if any(nulls) else None
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), structs, type=arrow_type(field), mask=mask
    )


def _column(field: Field, path: str, values: list[Any], ctx: _Ctx) -> pa.Array:
    kind = field.kind
    if kind == "ts":
        return _parsed(field, path, values, TS_FORMAT, ctx)
    if kind == "date":
        return _parsed(field, path, values, DATE_FORMAT, ctx).cast(pa.date32())
    if kind == "role_ts":
        return _role_ts(path, values, ctx)
    if kind == "map":
        return _map(path, values, ctx)
    if kind == "list":
        return _list(field, path, values, ctx)
    return _scalar(field, path, values, ctx)


def _extras(fields: tuple[Field, ...], rows: list[dict[str, Any]]) -> list[str | None]:
    """JSON text of unknown fields per row (nested lists with unknown item keys kept whole)."""
    known = frozenset(f.api for f in fields)
    nested = [(f.api, frozenset(c.api for c in f.children)) for f in fields if f.kind == "list"]
    out: list[str | None] = [None] * len(rows)
    for i, row in enumerate(rows):
        unknown = None
        if not known.issuperset(row):
            unknown = {k: v for k, v in row.items() if k not in known}
        for api, child_known in nested:
            items = row.get(api)
            if items and any(not child_known.issuperset(item) for item in items):
                unknown = unknown or {}
                unknown[api] = items
        if unknown:
            out[i] = orjson.dumps(unknown, option=orjson.OPT_SORT_KEYS).decode()
    return out


def _study_keys(rows: list[dict[str, Any]], study_key: str | None, ctx: _Ctx) -> pa.Array:
    """The row's studyKey, or the requested study; a row of another study is refused."""
    values = [row.get("studyKey") for row in rows]
    column = _scalar(Field("studyKey", "str"), "studyKey", values, ctx)
    if study_key is None:
        return column
    wrong = pc.and_(pc.is_valid(column), pc.not_equal(column, study_key))
    if pc.any(wrong).as_py():
        i = pc.index(wrong, True).as_py()
        raise ctx.bad("studyKey", i, values[i], f"the requested study {study_key!r}")
    return pc.fill_null(column, study_key)


def page_to_batch(entity: str, study_key: str | None, rows: list[dict[str, Any]]) -> pa.RecordBatch:
    """Convert one page's `data` list to a RecordBatch in `SCHEMAS[entity]`."""
    if entity not in FIELDS:
        raise ValueError(f"unknown entity {entity!r}; known: {', '.join(FIELDS)}")
    fields = FIELDS[entity]
    ctx = _Ctx(entity, study_key)
    for i, row in enumerate(rows):
        if type(row) is not dict:
            raise ctx.bad("data", i, row, "an object")
    arrays = [_study_keys(rows, study_key, ctx)]
    arrays += [
        _column(f, f.api, [row.get(f.api) for row in rows], ctx)
        for f in fields
        if f.api != "studyKey"
    ]
    arrays.append(pa.array(_extras(fields, rows), pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMAS[entity])

