"""A local Snowflake for tests, the benchmark and demos: the fakesnow server, plus `REMOVE`.

fakesnow (0.12.1) speaks Snowflake's HTTP API over DuckDB but does not know `REMOVE @stage/path`,
which the sink issues after every load. This module runs the fakesnow server with that one command
added, implemented as Snowflake documents it (delete every staged file under the path prefix), so
the sink's SQL is the real Snowflake SQL and tests can LIST the stage to see it cleaned.

`python -m imednet_assets.local_servers.snowflake --port P` runs it in the foreground;
`LocalSnowflake` starts and stops it as a child process group.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from imednet_assets.local_servers import free_port

_REMOVE = re.compile(r"^\s*(?:REMOVE|RM)\s+'?@([^'\s]+)'?\s*;?\s*$", re.IGNORECASE | re.DOTALL)


def _patch_remove() -> None:
    """Teach fakesnow's cursor `REMOVE @[db.schema.]stage[/path]` (prefix match, like Snowflake)."""
    import sqlglot
    from fakesnow import cursor as fs_cursor
    from fakesnow.transforms import stage

    original = fs_cursor.FakeSnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        match = _REMOVE.match(command)
        if match is None:
            return original(self, command, *args, **kwargs)
        var, _, path = match.group(1).partition("/")
        catalog, schema, name = stage.parts_from_var(var, self._conn.database, self._conn.schema)
        root = stage.internal_dir(f"{catalog}.{schema}.{name}")
        prefix = stage.internal_dir(f"{catalog}.{schema}.{name}", path)
        removed = []
        for file in sorted(Path(root).rglob("*")):
            if file.is_file() and str(file).startswith(prefix):
                file.unlink()
                removed.append(f"{name.lower()}/{file.relative_to(root)}")
        literal = sqlglot.exp.Literal.string
        rows = ", ".join(f"({literal(r).sql()}, 'removed')" for r in removed)
        select = (
            f"SELECT * FROM (VALUES {rows}) AS t(name, result)"
            if rows
            else "SELECT NULL::VARCHAR AS name, NULL::VARCHAR AS result WHERE false"
        )
        self._execute(sqlglot.parse_one(select, read="duckdb"))
        return self

    fs_cursor.FakeSnowflakeCursor.execute = execute


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Run the patched fakesnow server in the foreground until SIGTERM/SIGINT."""
    import uvicorn

    _patch_remove()
    import fakesnow.server

    uvicorn.Server(
        uvicorn.Config(fakesnow.server.app, host=host, port=port, log_level="warning")
    ).run()




class LocalSnowflake:
    """The patched fakesnow server in its own process group on 127.0.0.1, with a temp dir for its
    stage files (fakesnow keeps them under TMPDIR); stopped and cleaned by `stop()`."""

    def __init__(self, work_dir: Path | None = None) -> None:
        self.port = free_port()
        self._own_dir = work_dir is None
        self.dir = work_dir or Path(tempfile.mkdtemp(prefix="imednet-snowflake-"))
        self._proc: subprocess.Popen | None = None

    def connection_args(self) -> dict[str, Any]:
        """What `SnowflakeResource.additional_snowflake_connection_args` needs for this server."""
        return {"host": "localhost", "port": self.port, "protocol": "http"}

    def start(self) -> LocalSnowflake:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "fakesnow.log", "ab")  # noqa: SIM115 - closed with the process
        env = {**os.environ, "TMPDIR": str(self.dir)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"fakesnow server exited: {self.log()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port), timeout=0.5
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("fakesnow server did not start within 60 s")

    def log(self) -> str:
        path = self.dir / "fakesnow.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalSnowflake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    ns = parser.parse_args()
    serve(ns.port, ns.host)
