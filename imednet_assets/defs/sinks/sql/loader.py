"""Bulk load of an Arrow stream into one table, inside the caller's transaction.

PostgreSQL through psycopg: one `COPY ... FROM STDIN (FORMAT csv)` per table, fed batch by batch
with CSV that pyarrow renders in C++ (no Python objects per row). Other dialects: SQLAlchemy
`executemany` per batch (bounded memory: one batch of Python rows at a time).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from imednet_assets.defs.sinks.sql import ddl

_CSV = pacsv.WriteOptions(include_header=False)


@dataclass
class LoadProgress:
    """Where a load is, so an error can say which table and batch failed."""

    table: str = "(setup)"
    batch: int = 0  # non-empty batches sent so far
    rows: int = 0


def supports_copy(conn: sa.Connection) -> bool:
    """Whether `conn` is PostgreSQL through psycopg 3 (which has `cursor.copy`)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def csv_bytes(batch: pa.RecordBatch) -> bytes:
    """One batch as headerless CSV for PostgreSQL's COPY (see `ddl.copy_sql`)."""
    buf = io.BytesIO()
    pacsv.write_csv(batch, buf, _CSV)
    return buf.getvalue()


def copy_batches(
    conn: sa.Connection,
    schema: str | None,
    table: str,
    reader: pa.RecordBatchReader,
    progress: LoadProgress,
) -> None:
    """Stream `reader` into `table` through one COPY on the transaction's own connection."""
    raw = conn.connection.driver_connection  # the psycopg connection, same transaction
    statement = ddl.copy_sql(conn.dialect, schema, table, reader.schema.names)
    with raw.cursor() as cur, cur.copy(statement) as copy:
        for batch in reader:
            if batch.num_rows:
                progress.batch += 1
                copy.write(csv_bytes(batch))
                progress.rows += batch.num_rows
    # leaving the `copy` block ended the COPY: the server has checked every row by now


def insert_batches(
    conn: sa.Connection,
    table: sa.Table,
    reader: Iterable[pa.RecordBatch],
    progress: LoadProgress,
) -> None:
    """Generic path: `INSERT` with executemany, one batch of rows at a time."""
    insert = table.insert()
    for batch in reader:
        if batch.num_rows:
            progress.batch += 1
            conn.execute(insert, batch.to_pylist())
            progress.rows += batch.num_rows

