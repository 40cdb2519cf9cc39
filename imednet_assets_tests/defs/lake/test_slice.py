"""A slice's distinct values: read off the folder names where the files prove them, else read
from the rows."""

from pathlib import Path

import pyarrow as pa
import pytest

from imednet_assets.defs.lake.files import parquet_writer
from imednet_assets.defs.lake.slice import LakeSlice, encode

SCHEMA = pa.schema([("form_key", pa.string()), ("record_id", pa.int64())])
LONG = "F" * 5000  # longer than Parquet keeps in statistics


def _slice(tmp_path: Path, folders: dict[str, list[str | None]]) -> LakeSlice:
    """A slice with one file per `form_key=<folder>` holding the given form keys."""
    for folder, keys in folders.items():
        path = tmp_path / f"form_key={folder}" / "part-00000.parquet"
        path.parent.mkdir(parents=True)
        rows = pa.table({"form_key": keys, "record_id": list(range(len(keys)))}, schema=SCHEMA)
        with parquet_writer(path, SCHEMA) as writer:
            writer.write_table(rows, row_group_size=2)  # several row groups per file
    return LakeSlice.at(tmp_path, "records", "S1", SCHEMA)


def test_a_split_slice_names_its_values_in_its_folders(tmp_path):
    lake = _slice(tmp_path, {"AE": ["AE"] * 5, encode("é x;$"): ["é x;$"] * 3,
                             encode(None): [None, None]})
    assert lake._folder_values("form_key") == {"AE", "é x;$", None}
    assert lake.distinct("form_key") == ["AE", "é x;$"]


@pytest.mark.parametrize("folders", [
    {"AE": ["AE", "AE"], "CM": ["CM", "VS"]},  # a folder holding another form's rows
    {"AE": ["AE", "AE"], "CM": ["VS", "VS"]},  # a folder naming the wrong form
    {"AE": ["AE", None]},  # a null among the folder's rows
    {"LONG": [LONG, LONG]},  # no statistics for a value this long
])
def test_values_the_files_do_not_prove_are_read_from_the_rows(tmp_path, folders):
    lake = _slice(tmp_path, folders)
    assert lake._folder_values("form_key") is None
    expected = sorted({k for keys in folders.values() for k in keys if k is not None})
    assert lake.distinct("form_key") == expected


def test_a_column_the_slice_is_not_split_by_is_read_from_the_rows(tmp_path):
    lake = _slice(tmp_path, {"AE": ["AE", "AE"]})
    assert lake._folder_values("record_id") is None
    assert lake.distinct("record_id") == [0, 1]
