"""Fixtures of the browser test: `imednet-assets dev` on a free port with a throwaway data dir,
and Debian's Chromium driven by Playwright. Both are torn down completely (process group, files)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imednet_assets import settings
from imednet_assets.local_servers import free_port
from imednet_assets.processes import start_group, stop_group

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")
# what works on this machine kind (see the shared notes on test servers): no GPU, no sandbox (CI
# runs as root), and nothing that calls out to the network
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
STARTUP_TIMEOUT_S = 180.0
# the child must use the simulator and the data dir it is given, never a configured account,
# destination or Dagster instance from the environment running the tests
_STRIPPED_ENV_PREFIXES = (
    "IMEDNET_", "DAGSTER_", "SNOWFLAKE_", "MONGODB_", "NEO4J_", "FALKORDB_",
)

requires_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's Chromium is not on PATH (apt-get install -y chromium; .ci/run installs it)",
)


@dataclass
class DevServer:
    """A running `imednet-assets dev`: its web UI, its data dir and its log."""

    proc: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    log_path: Path

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/graphql",
                              json={"query": query, "variables": variables or {}}, timeout=30)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


_WORKSPACE_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _wait_until_loaded(server: DevServer) -> None:
    """Poll the GraphQL API until the code location has loaded (the webserver answers earlier)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"imednet-assets dev exited with {server.proc.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            entries = server.graphql(_WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = repr(exc)
        else:
            last = repr(entries)
            loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
            if entries and len(loaded) == len(entries):
                errors = [e for e in loaded
                          if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return
        time.sleep(0.5)
    raise TimeoutError(f"the code location did not load in {STARTUP_TIMEOUT_S:.0f} s "
                       f"(last: {last}):\n{server.log_tail()}")


@pytest.fixture
def dagster_dev() -> Iterator[DevServer]:
    """`imednet-assets dev` (simulator with 3 studies registered as partitions, then `dagster
    dev`) on a free port, with its data dir and DAGSTER_HOME in a temporary directory."""
    workdir = Path(tempfile.mkdtemp(prefix="imednet-ui-"))
    data = workdir / "data"
    log_path = workdir / "dev.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV_PREFIXES)}
    env[settings.DATA_DIR_ENV] = str(data)
    cli = Path(sys.executable).with_name("imednet-assets")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "imednet_assets.cli"]
    proc = start_group([*cmd, "dev", "--port", str(port)], env=env, log=log_path, cwd=REPO)
    server = DevServer(proc, f"http://127.0.0.1:{port}", data, log_path)
    try:
        _wait_until_loaded(server)
        yield server
    finally:
        stop_group(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def page() -> Iterator[Any]:
    """A Playwright page in Debian's Chromium, on a fresh profile that is removed afterwards."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="imednet-ui-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True,
                viewport=VIEWPORT)
            try:
                context.set_default_timeout(30_000)
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
