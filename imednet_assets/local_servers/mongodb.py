"""nx-27017, a MongoDB wire-protocol server on SQLite, for the MongoDB destination."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient

from imednet_assets.local_servers import free_port
from imednet_assets.processes import kill_group

NX = Path(sys.executable).parent / "nx-27017"
START_TIMEOUT_S = 30


class NxServer:
    """One nx-27017 process on 127.0.0.1 (its data in `data_dir`); `stop()` kills it like a crash,
    `start()` brings it back on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(NX), "--data-dir", str(self.data_dir), "-p", str(self.port), "--host",
             "127.0.0.1", "--log-file", str(self.data_dir / "nx.log"),
             "--pid-file", str(self.data_dir / "nx.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
            while True:
                try:
                    client.admin.command("ping")
                    return
                except Exception as exc:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        msg = f"nx-27017 did not start (log: {self.data_dir})"
                        raise RuntimeError(msg) from exc
                    time.sleep(0.1)

    def stop(self) -> None:
        kill_group(self.proc)
        self.proc = None

    def client(self) -> MongoClient:
        return MongoClient(self.uri, serverSelectionTimeoutMS=5_000)
