"""Deterministic zip archives: the same members in the same order give the same bytes.

Every member gets a fixed timestamp (1980-01-01, the zip epoch) and mode 0644, so replaying a
study whose data did not change writes an identical file.

A member is compressed by a second thread while the caller makes the next chunk (zlib and crc32
release the GIL): the same chunks reach the member in the same order, so the bytes are those of
writing in the caller's thread, and at most `PIPELINE_CHUNKS` chunks wait in between.
"""

from __future__ import annotations

import io
import queue
import threading
import zipfile
from pathlib import Path
from typing import IO

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
COMPRESS_LEVEL = 6
PIPELINE_CHUNKS = 2
_DONE = object()


def open_archive(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(
        path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
    )


def open_member(archive: zipfile.ZipFile, name: str, *, pipelined: bool = True) -> IO[bytes]:
    """A member to stream into (its size need not be known: zip64 sizes are always written);
    `pipelined=False`: compressed in the writing thread."""
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    member = archive.open(info, "w", force_zip64=True)
    return PipelinedWriter(member) if pipelined else member  # type: ignore[return-value]


class PipelinedWriter(io.RawIOBase):
    """Writes into `target` from a worker thread, chunk by chunk in order; closing waits for the
    worker, then closes `target`. A failed write is raised by the next `write` or by `close`."""

    def __init__(self, target: IO[bytes], depth: int = PIPELINE_CHUNKS) -> None:
        super().__init__()
        self._target = target
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bundle-zip-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not _DONE:
            if self._error is None:  # after a failure, drain so the writer never blocks
                try:
                    self._target.write(chunk)  # type: ignore[arg-type]
                except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        self._raise()
        chunk = bytes(data)
        if chunk:
            self._queue.put(chunk)
        return len(chunk)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._queue.put(_DONE)
            self._thread.join()
            try:
                self._target.close()  # always: a zip member left open blocks closing the zip
            except BaseException:
                if self._error is None:
                    raise
            self._raise()  # the first failure, not what it caused
        finally:
            super().close()
