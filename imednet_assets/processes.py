"""Child processes the platform starts as a group and stops completely: `dagster dev`, Celery
workers. Each leads its own process group, so a stop reaches its own children too."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def _default_sigint() -> None:
    # a shell running us in the background ignores SIGINT, and children inherit that: Ctrl+C
    # must reach the child whatever started us
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_group(cmd: Sequence[str], *, env: Mapping[str, str], log: Path,
                cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """`cmd` in a new process group, its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(list(cmd), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_default_sigint)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # poll() reaps the group leader: a zombie would still count as a member of the group
        if proc.poll() is not None and not group_alive(proc.pid):
            return True
        time.sleep(0.2)
    return False


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """Ctrl+C for the whole group, as a terminal sends it (SIGTERM is no better: after a run,
    Dagster's code servers ignore it), then SIGKILL whatever is left after `grace_s`."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(proc, wait_s):
            break


def kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a server's whole group at once (its data is throw-away) and reap it."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
