"""Deterministic DuckDB names for forms and variables: wide table names, column names, column types.

Rules (the mapping is stored in `forms.table_name`, `variables.column_name` and
`variables.raw_column_name`, so nobody has to re-derive it):
- A name that is identifier-ish (`[A-Za-z_][A-Za-z0-9_]*`) is kept as it is (case kept). Anything
  else is normalised: every run of other characters becomes `_`, leading/trailing `_` are stripped,
  a name that is empty or starts with a digit gets a `v_` prefix. Identifiers are always quoted in
  SQL anyway; normalising only keeps names pleasant to type.
- DuckDB matches identifiers case-insensitively, so clashes are detected on the lower-cased name.
  Record meta columns always win; variables are then named in order of (name, variable_id) and a
  clash gets `_2`, `_3`, ... The same rule names wide tables (`form_<key>`) within a study.
- Every non-text variable gets a second VARCHAR column `<col>__raw` with the text exactly as the API
  sent it (named after all main columns, clashes resolved the same way), so no value is ever lost
  when a typed cast fails (`"ND"` in a NUMBER gives NULL in the typed column).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

#: Record columns that lead every wide form table, in this order.
META_COLUMNS: tuple[str, ...] = (
    "study_key",
    "record_id",
    "subject_key",
    "visit_id",
    "interval_id",
    "site_id",
    "parent_record_id",
    "record_status",
    "deleted",
    "date_created",
    "date_modified",
)

#: variableType (case-insensitive) -> DuckDB type; anything else is text (VARCHAR).
TYPE_MAP: dict[str, str] = {
    "NUMBER": "DOUBLE",
    "DATE": "DATE",
    "DATETIME": "TIMESTAMP",
    "CHECKBOX": "BOOLEAN",
}

RAW_SUFFIX = "__raw"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NON_IDENT = re.compile(r"[^A-Za-z0-9_]+")


def duckdb_type(variable_type: str | None) -> str:
    """DuckDB column type for an iMednet variableType (unknown or missing -> VARCHAR)."""
    return TYPE_MAP.get((variable_type or "").strip().upper(), "VARCHAR")


def normalise(name: str) -> str:
    """Keep identifier-ish names, turn anything else into a readable `[A-Za-z0-9_]` name."""
    if _IDENTIFIER.match(name):
        return name
    cleaned = _NON_IDENT.sub("_", name).strip("_")
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"v_{cleaned}".rstrip("_")
    return cleaned


def shorten(name: str, max_length: int | None) -> str:
    """`name` cut to `max_length` UTF-8 bytes, deterministically: a long name keeps its start and
    gets `_` + 8 hex digits of its SHA-1, so two long names with the same start stay distinct."""
    if max_length is None or len(name.encode()) <= max_length:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    head = name.encode()[: max(max_length - 9, 1)].decode(errors="ignore")
    return f"{head}_{digest}"


class NameAllocator:
    """Hands out unique names, case-insensitively, suffixing `_2`, `_3`, ... on a clash.

    With `max_length` (a destination's identifier limit, in bytes) every name is shortened first,
    and a suffixed name is shortened to leave room for its suffix.
    """

    def __init__(self, reserved: Iterable[str] = (), max_length: int | None = None) -> None:
        self._taken = {name.lower() for name in reserved}
        self._max = max_length

    def take(self, wanted: str) -> str:
        name, n = shorten(wanted, self._max), 1
        while name.lower() in self._taken:
            n += 1
            suffix = f"_{n}"
            room = None if self._max is None else self._max - len(suffix)
            name = shorten(wanted, room) + suffix
        self._taken.add(name.lower())
        return name


@dataclass(frozen=True)
class VariableColumn:
    """Where one variable of one form lands in the form's wide table."""

    form_key: str
    variable_name: str
    variable_type: str | None
    label: str | None
    column_name: str
    column_type: str
    raw_column_name: str | None  # None for text variables: the main column is already raw text


@dataclass(frozen=True)
class FormTable:
    form_key: str
    table_name: str
    columns: tuple[VariableColumn, ...]

    def column_descriptions(self) -> dict[str, str]:
        """lower(column name) -> what an asset page shows for it: the variable's label (its
        name when it has none), and for the `__raw` twin that it is the value as entered."""
        described: dict[str, str] = {}
        for c in self.columns:
            label = c.label or c.variable_name
            described[c.column_name.lower()] = label
            if c.raw_column_name is not None:
                described[c.raw_column_name.lower()] = f"{label} (as entered, text)"
        return described


# the variable fields the wide tables are named and typed from
DICTIONARY_COLUMNS = (
    "form_key",
    "variable_name",
    "variable_type",
    "label",
    "variable_id",
    "deleted",
    "disabled",
)


def _dedupe_variables(variables: pa.Table) -> dict[str, list[dict]]:
    """One entry per (form, variable name): live before deleted/disabled, then the newest id."""
    rows = variables.select(
        [c for c in DICTIONARY_COLUMNS if c in variables.column_names]
    ).to_pylist()
    rows.sort(
        key=lambda r: (
            bool(r.get("deleted")),
            bool(r.get("disabled")),
            -(r.get("variable_id") or 0),
        )
    )
    best: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row.get("form_key") is None or row.get("variable_name") is None:
            continue
        best.setdefault((row["form_key"], row["variable_name"]), row)
    by_form: dict[str, list[dict]] = {}
    for (form_key, _), row in best.items():
        by_form.setdefault(form_key, []).append(row)
    return by_form


def plan_form_tables(
    form_keys: Iterable[str],
    variables: pa.Table,
    extra_form_keys: Iterable[str] = (),
    max_length: int | None = None,
) -> list[FormTable]:
    """Name the wide table of every form and the columns of every variable, deterministically.

    `form_keys` are the study's dictionary forms, `variables` its variables slice (form_key,
    variable_name, variable_type, label, ...). `extra_form_keys` (keys seen only in records) are
    named after all dictionary forms, so they never change a dictionary form's table name.
    `max_length` is the destination's identifier limit in bytes (None: no limit, as in DuckDB).
    """
    by_form = _dedupe_variables(variables)
    known = sorted(set(form_keys) | set(by_form))
    extra = sorted(set(extra_form_keys) - set(known))
    tables = NameAllocator(max_length=max_length)
    plans: list[FormTable] = []
    for form_key in known + extra:
        table_name = tables.take(f"form_{normalise(form_key)}")
        rows = sorted(
            by_form.get(form_key, []), key=lambda r: (r["variable_name"], r.get("variable_id") or 0)
        )
        cols = NameAllocator(META_COLUMNS, max_length)
        mains = [cols.take(normalise(r["variable_name"])) for r in rows]
        columns = []
        for row, main in zip(rows, mains, strict=True):
            ctype = duckdb_type(row.get("variable_type"))
            raw = None if ctype == "VARCHAR" else cols.take(main + RAW_SUFFIX)
            columns.append(
                VariableColumn(
                    form_key=form_key,
                    variable_name=row["variable_name"],
                    variable_type=row.get("variable_type"),
                    label=row.get("label"),
                    column_name=main,
                    column_type=ctype,
                    raw_column_name=raw,
                )
            )
        plans.append(FormTable(form_key, table_name, tuple(columns)))
    return plans


def mapping_tables(plans: list[FormTable]) -> tuple[pa.Table, pa.Table]:
    """The naming plan as two Arrow tables (forms -> table_name, variables -> column names)."""
    forms = pa.table(
        {
            "form_key": pa.array([p.form_key for p in plans], pa.string()),
            "table_name": pa.array([p.table_name for p in plans], pa.string()),
        }
    )
    cols = [c for p in plans for c in p.columns]
    variables = pa.table(
        {
            "form_key": pa.array([c.form_key for c in cols], pa.string()),
            "variable_name": pa.array([c.variable_name for c in cols], pa.string()),
            "dict_variable_type": pa.array([c.variable_type for c in cols], pa.string()),
            "dict_label": pa.array([c.label for c in cols], pa.string()),
            "column_name": pa.array([c.column_name for c in cols], pa.string()),
            "column_type": pa.array([c.column_type for c in cols], pa.string()),
            "raw_column_name": pa.array([c.raw_column_name for c in cols], pa.string()),
        }
    )
    return forms, variables
