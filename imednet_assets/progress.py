"""Progress of an in-process run on the console, for `demo` and `refresh`: which step, how many
lake rows so far, the step's latest message and the time elapsed, read from the run's own event
log while it executes. A big study takes minutes; the final summary is printed as before.

On a terminal the line is redrawn in place; otherwise (a log file, CI) one line is written when
the step changes. Progress goes to stderr so the summary on stdout stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

import dagster as dg

POLL_S = 0.5
LAKE_PREFIX = "imednet/"


class RunProgress:
    """Use as a context manager around `execute_in_process(run_id=run_id, ...)`."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, label: str,
                 stream: TextIO | None = None) -> None:
        self._instance, self._run_id, self._label = instance, run_id, label
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-progress", daemon=True)
        self._cursor: str | None = None
        self.step = "starting"
        self.lake_rows = 0
        self.note = ""
        self._started = time.monotonic()
        self._shown = ""

    def __enter__(self) -> RunProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._tty and self._shown:
            self._stream.write("\r" + " " * len(self._shown) + "\r")
            self._stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self._started
        note = f" - {self.note}" if self.note else ""
        return (f"study {self._label}: {self.step}, {self.lake_rows:,} lake rows{note} "
                f"({elapsed:.0f} s)")

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                changed = self._read()
            except Exception:  # noqa: BLE001 - progress must never break the run it watches
                continue
            self._show(changed)

    def _read(self) -> bool:
        """Fold the run's new events in; True when the step changed."""
        found = self._instance.event_log_storage.get_records_for_run(
            self._run_id, cursor=self._cursor)
        self._cursor = found.cursor
        step = self.step
        for record in found.records:
            self._fold(record.event_log_entry)
        return step != self.step

    def _fold(self, entry: Any) -> None:
        event = entry.dagster_event
        if event is None:
            if entry.user_message:  # a step's own log line (the lake's "rows read so far")
                self.note = entry.user_message.splitlines()[0][:80]
            return
        if event.event_type_value == "STEP_START":
            self.step, self.note = event.step_key or self.step, ""
        elif event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.step_materialization_data.materialization
            rows = materialization.metadata.get("dagster/row_count")
            if rows is not None and materialization.asset_key.to_user_string().startswith(
                    LAKE_PREFIX):
                self.lake_rows += int(rows.value)

    def _show(self, step_changed: bool) -> None:
        text = self.line()
        if self._tty:
            pad = " " * max(0, len(self._shown) - len(text))
            self._stream.write("\r" + text + pad)
        elif step_changed:
            self._stream.write(text + "\n")
        else:
            return
        self._stream.flush()
        self._shown = text
