"""Local Parquet files sized for Snowflake, and the manifest records of the batches loaded.

A table's rows stream from Arrow batches into `part-NNNNN` files that roll over at a target size
(Snowflake loads best from files of ~100-250 MB compressed), so memory stays at one batch. Each
file is one load batch: its row count and SHA-256 go into the manifest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from imednet_assets.defs.sinks.common import file_sha256

COMPRESSION = "snappy"  # what Snowflake decodes fastest; files are short-lived


@dataclass(frozen=True)
class StagedFile:
    """One local Parquet file of a table: a load batch."""

    path: Path
    rows: int
    checksum: str  # sha256 of the file bytes

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ManifestRecord:
    """One loaded batch, as kept in the manifest table and the JSON lines file."""

    batch_id: str  # <study>/<table>/<n>
    study_key: str
    table_name: str
    stage_path: str
    file_name: str
    rows: int
    checksum: str
    run_id: str
    loaded_at: str  # ISO 8601, UTC

    def values(self) -> tuple:
        return tuple(asdict(self).values())


def upper_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with the Snowflake (upper-case) column names, so Parquet and table names agree."""
    return pa.schema([f.with_name(f.name.upper()) for f in schema])


def write_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    folder: Path,
    *,
    target_bytes: int,
    token: str | None = None,
) -> list[StagedFile]:
    """Write `batches` (of `schema`) into `folder` as Parquet files of about `target_bytes` each.

    A file closes after the row group that reaches the target, so files may exceed it by up to one
    batch. File names carry `token` (random by default), so they are unique wherever they are
    staged. No rows, no files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    token = token or uuid.uuid4().hex[:12]
    out_schema = upper_schema(schema)
    files: list[StagedFile] = []
    writer: pq.ParquetWriter | None = None
    sink: pa.OSFile | None = None
    path: Path | None = None
    rows = 0

    def close() -> None:
        nonlocal writer, sink, rows
        assert writer is not None and sink is not None and path is not None
        writer.close()
        sink.close()
        files.append(StagedFile(path, rows, file_sha256(path)))
        writer, sink, rows = None, None, 0

    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            if writer is None:
                path = folder / f"{token}-part-{len(files):05d}.parquet"
                sink = pa.OSFile(str(path), "wb")
                writer = pq.ParquetWriter(sink, out_schema, compression=COMPRESSION)
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=out_schema))
            rows += batch.num_rows
            assert sink is not None
            if sink.tell() >= target_bytes:
                close()
        if writer is not None:
            close()
    finally:
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()
    return files


def append_jsonl(path: Path, records: Iterable[ManifestRecord]) -> None:
    """Append manifest records to a JSON lines file (one object per loaded batch)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> Iterator[dict]:
    if path.exists():
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
