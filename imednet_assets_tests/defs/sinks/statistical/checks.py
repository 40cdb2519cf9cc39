"""Whole-table comparison of each export with the DuckDB tables, through the mapping sheet."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from imednet_assets.defs.sinks.statistical.formats import FORMATS
from imednet_assets_tests.defs.sinks.statistical.conftest import NAME, Exports, cell, expected


def _by_column(sheet: list[dict[str, Any]], table: str) -> dict[str, list[dict[str, Any]]]:
    """DuckDB column -> its mapping rows (pieces in order)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sheet:
        if row["kind"] == "variable" and row["table"] == table:
            out[row["column"]].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: int(r["part"]))
        assert [int(r["part"]) for r in rows] == list(range(1, int(rows[0]["parts"]) + 1))
    return out


def rebuilt(frame: Any, pieces: list[dict[str, Any]], storage: str) -> list[Any]:
    """One DuckDB column from its pieces as read (text pieces joined, missing as empty)."""
    if storage != "text":
        (only,) = pieces
        return [cell(v, storage) for v in frame[only["shortnm"]].tolist()]
    columns = [frame[p["shortnm"]].tolist() for p in pieces]
    return [cell("".join(cell(v, "text") or "" for v in values), "text")
            for values in zip(*columns, strict=True)]


def check_format(exports: Exports, study: str, fmt: str) -> dict[str, Any]:
    """Every cell of every DuckDB table (subjects, visits, forms) reads back from `fmt`'s export
    equal to DuckDB, by the mapping; names, labels and values keep the format's limits; the
    mapping dataset holds the sheet's rows. Returns the mapping sheet's rows."""
    rules = FORMATS[fmt]
    datasets, sheet = exports.read(study, fmt)
    tables = exports.duckdb_tables(study)
    names = {r["table"]: r["dataset"] for r in sheet if r["kind"] == "dataset"}
    assert sorted(names) == sorted([*tables, "mapping"])
    assert sorted(datasets) == sorted(names.values())
    for table, data in tables.items():
        frame, meta = datasets[names[table]]
        assert len(frame) == data.num_rows, table
        mapped = _by_column(sheet, table)
        assert list(mapped) == data.column_names, table  # every column, in order
        written = [p["shortnm"] for c in data.column_names for p in mapped[c]]
        assert list(frame.columns) == written, table
        labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
        for column, type_ in zip(data.column_names, data.schema.types, strict=True):
            pieces = mapped[column]
            storage = pieces[0]["storage"]
            got = rebuilt(frame, pieces, storage)
            want = [expected(v, storage, fmt) for v in data.column(column).to_pylist()]
            assert got == want, (fmt, table, column, type_)
            for p in pieces:
                assert labels[p["shortnm"]] == p["shortlbl"], (table, p, labels[p["shortnm"]])
                suffix = "" if p["part"] == "1" else f" ({p['part']})"
                room = rules.label_max - len(suffix)
                assert p["shortlbl"] == (
                    p["label"].encode()[:room].decode(errors="ignore").rstrip(" ") + suffix)
        for name in frame.columns:
            assert NAME[fmt].match(name) and len(name) <= rules.name_max, name
            if rules.value_max is not None and frame[name].dtype == object:
                assert all(len(str(v).encode()) <= rules.value_max for v in frame[name]
                           if isinstance(v, str)), name
    # the mapping dataset: the sheet's rows but its own
    frame, _ = datasets[names["mapping"]]
    own = [r for r in sheet if r["table"] != "mapping"]
    mapped = _by_column(sheet, "mapping")
    for column in ("kind", "dataset", "table", "origname", "column", "label", "shortnm",
                   "shortlbl", "storage"):
        assert rebuilt(frame, mapped[column], "text") == [
            expected(r[column], "text", fmt) for r in own], column
    return {"sheet": sheet, "datasets": datasets, "names": names}
