"""Lake value types: what an ingest asset hands the lake (`LakeWrite`) and what a reader gets back
(`LakeSlice`), plus the lake's path layout, shared by the writer and every reader."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from imednet_assets.defs.lake.manifest import SliceManifest

STUDY_COLUMN = "study_key"
FORM_COLUMN = "form_key"
# Hive's name for a null/empty partition value; the real column keeps the actual value.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
LOCK_DIR = ".locks"
CHANGES_DIR = ".changes"
CHANGES_SUFFIX = ".changes"
"""Change files are Parquet, named so that no glob of the lake's `*.parquet` reads a row twice."""


def _lake_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t) and t.unit == "s":
        return pa.timestamp("ms", t.tz)
    if pa.types.is_list(t):
        return pa.list_(t.value_field.with_type(_lake_type(t.value_type)))
    if pa.types.is_large_list(t):
        return pa.large_list(t.value_field.with_type(_lake_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_lake_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_lake_type(t.key_type), t.item_field.with_type(_lake_type(t.item_type)))
    return t


def lake_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` as Parquet stores and reads it back: timestamp[s] becomes timestamp[ms] (Parquet
    has no seconds unit), so what is written, what is read and `LakeSlice.schema` agree."""
    return pa.schema([f.with_type(_lake_type(f.type)) for f in schema], metadata=schema.metadata)


def encode(value: str | None) -> str:
    """Percent-encode a partition value for a folder name (`quote(v, safe="")`)."""
    return quote(value, safe="") if value else NULL_PARTITION


def entity_dir(root: Path, entity: str) -> Path:
    return root / entity


def study_folder_name(study_key: str) -> str:
    return f"{STUDY_COLUMN}={encode(study_key)}"


def study_dir(root: Path, entity: str, study_key: str) -> Path:
    """`<root>/<entity>/study_key=<S>`: the unit that is swapped in atomically."""
    return entity_dir(root, entity) / study_folder_name(study_key)


def changes_dir(study_folder: Path) -> Path:
    """`<root>/<entity>/.changes/study_key=<S>` beside the study folder: the rows the recent
    merges wrote, kept outside the slice so its files and a data cut of it stay as they are."""
    return study_folder.parent / CHANGES_DIR / study_folder.name


def change_file_name(lake_id: str, sequence: int) -> str:
    """Sorts by sequence within a lineage (a rebuilt lake's files never pass for its own)."""
    return f"{lake_id}-{sequence:010d}{CHANGES_SUFFIX}"


def part_file_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass
class LakeWrite:
    """A streamed output for the lake IO manager: batches of one entity for one study.

    The batches are consumed once, while writing, so a study never has to fit in memory.
    """

    entity: str
    study_key: str
    schema: pa.Schema
    batches: Iterable[pa.RecordBatch]
    sort_by: str
    """The entity's id column: rows are sorted by it within each file (deterministic files)."""
    split_by: str | None = None
    """A column to split into `<split_by>=<value>` sub-folders (records: `form_key`)."""
    watermark_by: str | None = None
    """The column whose highest value is the slice's watermark (`date_modified`)."""
    incremental: Incremental | None = None
    """Set when the run asks for an incremental refresh (the lake falls back to `batches`,
    the full read, when the slice has no watermark yet or its counts disagree with the API)."""


@dataclass
class Incremental:
    """How to bring a slice up to date from its watermark instead of reading everything again."""

    changes_since: Callable[[datetime], Iterable[pa.RecordBatch]]
    """Rows with `watermark_by >= since` (the lake drops those it already holds)."""
    api_count: Callable[[], int]
    """The API's row count of the entity, compared with the slice's after the merge: a
    disagreement (rows purged upstream) turns the run into a full refresh."""
    lag_s: float = 5.0
    """The mark minus this is where the read starts: `dateModified` has second resolution and
    writes land late."""
    append_only: bool = False
    """New rows only (record revisions): kept files stay as they are, new rows go to a new file."""
    expected_rows: int | None = None
    """Rows the change sensor counted in the window read: enough of them touch every big folder,
    which the lake then starts reading before the first change arrives."""


@dataclass
class LakeSlice:
    """One study's slice of one entity in the lake, ready to read (DuckDB glob or pyarrow)."""

    entity: str
    study_key: str
    path: Path
    files: list[Path]
    schema: pa.Schema
    manifest: SliceManifest | None = None
    """Watermark and change log (None for a slice written before manifests existed)."""

    @classmethod
    def read(cls, root: Path, entity: str, study_key: str, schema: pa.Schema | None) -> LakeSlice:
        """The slice as it is on disk; raises if it was never written."""
        path = study_dir(root, entity, study_key)
        if not path.is_dir():
            raise FileNotFoundError(
                f"no lake slice of {entity} for study {study_key!r} at {path}: "
                f"materialize imednet/{entity} for partition {study_key!r} first"
            )
        return cls.at(path, entity, study_key, schema)

    @classmethod
    def at(cls, path: Path, entity: str, study_key: str, schema: pa.Schema | None) -> LakeSlice:
        """The slice whose files are under the folder `path` (the lake's own folder, or a local
        copy of an object-store version)."""
        files = sorted(path.rglob("*.parquet"))
        if files:
            schema = pq.read_schema(files[0])
        if schema is None:
            raise FileNotFoundError(f"lake slice of {entity} for study {study_key!r} at {path} "
                                    "holds no files and no schema is known")
        return cls(entity=entity, study_key=study_key, path=path, files=files, schema=schema,
                   manifest=SliceManifest.read(path))

    def glob(self) -> str:
        """Glob of every file of the slice for DuckDB `read_parquet`.

        Read with `hive_partitioning=false`: folder values are percent-encoded, the real
        `study_key`/`form_key` columns inside the files hold the true values.
        """
        return str(self.path / "**" / "*.parquet")

    def change_files(self, since: str | None) -> list[Path] | None:
        """The rows each merge after the state `since` wrote, oldest first, while the lake
        keeps them all; None when it does not (a full write came between, a file was pruned,
        an object-store lake): then the changed keys' rows are searched in the slice."""
        sequences = self.manifest.sequences_since(since) if self.manifest else None
        if not sequences:
            return None
        assert self.manifest is not None
        folder = changes_dir(self.path)
        files = [folder / change_file_name(self.manifest.lake_id, s) for s in sequences]
        return files if all(f.is_file() for f in files) else None

    def dataset(self) -> pads.Dataset:
        return pads.dataset([str(f) for f in self.files], schema=self.schema, format="parquet")

    def columns(self, names: list[str], where: pc.Expression | None = None) -> pa.Table:
        """These columns of the slice's rows (those `where` keeps; small columns: dictionaries,
        keys); a column the slice does not have comes back as nulls, an empty slice as no
        rows."""
        present = [c for c in names if c in self.schema.names]
        table = (
            self.dataset().to_table(columns=present, filter=where)
            if self.files
            else self.schema.empty_table().select(present)
        )
        for c in names:
            if c not in table.column_names:
                table = table.append_column(c, pa.nulls(table.num_rows, pa.string()))
        return table.select(names)

    def distinct(self, column: str) -> list[str]:
        """The sorted non-null values of one column of the slice: from the folder names when
        the slice is split by it (records by `form_key`), else from the column's rows."""
        values = self._folder_values(column)
        if values is None:
            values = set(pc.unique(self.columns([column]).column(column)).to_pylist())
        return sorted(v for v in values if v is not None)

    def _folder_values(self, column: str) -> set[Any] | None:
        """The values of `column` when every file lies in a `<column>=<value>` folder and its
        statistics show that one value in every row group (min = max = the folder's value,
        or all nulls in the null folder); else None (the rows are read instead)."""
        values: set[Any] = set()
        for path in self.files:
            prefix, _, folder_value = path.parent.name.partition("=")
            if prefix != column:
                return None
            meta = pq.ParquetFile(path).metadata
            leaf = next((i for i in range(meta.num_columns)
                         if meta.schema.column(i).path == column), None)
            if leaf is None:
                return None
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                stats = meta.row_group(g).column(leaf).statistics
                if stats is None or not stats.has_null_count:
                    return None
                if stats.null_count == rows:
                    value = None
                elif stats.null_count == 0 and stats.has_min_max and stats.min == stats.max:
                    value = stats.min
                else:
                    return None
                # a value cut short in the statistics would not name the folder
                if encode(value) != folder_value:
                    return None
                values.add(value)
        return values

    @property
    def num_rows(self) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
