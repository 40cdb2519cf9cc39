"""A measurement in its own process: it starts servers and sets the environment, so the parent
stays clean; the child prints one JSON line last."""

from __future__ import annotations

import subprocess
import sys

import orjson


def run_json(module: str, *args: str, what: str) -> dict:
    """`python -m module args...`'s last stdout line as JSON; its stderr's tail on failure."""
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} bench failed:\n{tail}")
    return orjson.loads(done.stdout.strip().splitlines()[-1])
