"""StudyTables: the tabular destinations' tables equal the DuckDB sink's, row for row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from imednet_assets.client.arrow import SCHEMAS
from imednet_assets.defs.lake.slice import LakeSlice
from imednet_assets.defs.sinks.duckdb.naming import NameAllocator, shorten
from imednet_assets.defs.sinks.tabular import ENTITIES, StudyTables
from imednet_assets_tests.defs.sinks.duckdb.conftest import Sink
from imednet_assets_tests.defs.sinks.duckdb.test_assets import LONG_NAME, study_a


@pytest.fixture
def sink(tmp_path: Path) -> Sink:
    return Sink(tmp_path)


def _slices(sink: Sink, study: str) -> dict[str, LakeSlice]:
    return {e: LakeSlice.read(sink.lake, e, study, SCHEMAS[e]) for e in ENTITIES}


def _rows(table: pa.Table) -> list[tuple]:
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def test_every_table_equals_the_duckdb_sinks_table(sink: Sink) -> None:
    study_a(sink)
    sink.run("A")
    with StudyTables("A", _slices(sink, "A")) as tables:
        specs = tables.specs()
        assert [s.name for s in specs] == [
            "subjects", "visits", "forms", "variables", "records_long",
            "form_AE_Log", "form_EMPTY", "form_VS",
        ]
        for spec in specs:
            ours = tables.read(spec).read_all()
            assert ours.schema == tables.schema(spec)
            duck = sink.query(f'SELECT * FROM "{spec.name}"')
            described = [c for (c,) in sink.query(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                "ORDER BY column_index", [spec.name])]
            if spec.kind == "entity":
                # nested columns (keywords) are JSON text here; compare the flat ones
                flat = [c for c in described if c not in ("keywords",)]
                idx = [described.index(c) for c in flat]
                duck = [tuple(r[i] for i in idx) for r in duck]
                ours = ours.select(flat)
                assert ours.column_names == flat
            elif spec.kind == "form":
                assert ours.column_names == described
            else:
                ours = ours.select(described)
            assert _rows(ours) == sorted(duck, key=repr), spec.name


def test_nested_columns_come_as_json_text(sink: Sink) -> None:
    study_a(sink)
    with StudyTables("A", _slices(sink, "A")) as tables:
        subjects = tables.read(tables.specs()[0]).read_all()
    assert subjects.schema.field("keywords").type == pa.string()


def test_long_names_are_shortened_deterministically_and_stay_unique(sink: Sink) -> None:
    study_a(sink)
    with StudyTables("A", _slices(sink, "A"), max_identifier_length=63) as tables:
        vs = next(s for s in tables.specs() if s.name == "form_VS")
        names = tables.read(vs).read_all().column_names
        variables = tables.read(tables.specs()[3]).read_all()
    long_col = shorten(LONG_NAME, 63)
    assert long_col == "q" * 54 + "_" + long_col[-8:] and len(long_col) == 63
    assert long_col in names
    assert all(len(n.encode()) <= 63 for n in names)
    assert len({n.lower() for n in names}) == len(names)
    # the dictionary says where the long variable went
    mapping = dict(zip(variables.column("variable_name").to_pylist(),
                       variables.column("column_name").to_pylist(), strict=True))
    assert mapping[LONG_NAME] == long_col


def test_name_allocator_keeps_room_for_clash_suffixes() -> None:
    names = NameAllocator(max_length=20)
    first = names.take("abcdefghijklmnopqrstuvwxyz")
    assert first == "abcdefghijk_" + first[-8:] and len(first) == 20
    # different long names keep distinct digests, whatever their case
    assert names.take("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != first
    # a shortened name that clashes gets a suffix and stays within the limit
    again = NameAllocator([first], max_length=20).take("abcdefghijklmnopqrstuvwxyz")
    assert again == shorten("abcdefghijklmnopqrstuvwxyz", 18) + "_2" and len(again) == 20
    assert names.take("short") == "short"
    assert names.take("SHORT") == "SHORT_2"
    assert shorten("é" * 40, 20).encode().__len__() <= 20


def test_a_slice_of_another_study_is_refused(sink: Sink) -> None:
    study_a(sink, "A")
    study_a(sink, "B")
    slices = _slices(sink, "A")
    slices["records"] = LakeSlice.read(sink.lake, "records", "B", SCHEMAS["records"])
    with pytest.raises(ValueError, match="lake slice of records is for study B, not A"):
        StudyTables("A", slices)
