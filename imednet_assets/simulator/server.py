"""Serving the simulator: in a thread (tests) or a subprocess (benchmarks), and the CLI entry."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess as sp
import sys
import threading
from dataclasses import asdict
from typing import Any

import httpx
import uvicorn

from imednet_assets.simulator.app import build_app
from imednet_assets.simulator.store import SimulatorConfig, SimulatorStore, build_store


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _uvicorn(app: Any) -> uvicorn.Server:
    # quiet: warnings only, no access log
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                         lifespan="off"))


def _cli_args(config: SimulatorConfig, host: str, port: int) -> list[str]:
    args = ["--host", host, "--port", str(port), "--seed", str(config.seed),
            "--studies", str(config.studies), "--subjects", str(config.subjects),
            "--latency-ms", str(config.latency_ms), "--error-rate", str(config.error_rate),
            "--malformed-rate", str(config.malformed_rate),
            "--max-page-size", str(config.max_page_size), "--oversize", config.oversize]
    if config.rate_limit:
        args += ["--rate-limit", str(config.rate_limit)]
    if config.hostile:
        args.append("--hostile")
    if config.api_key is not None and config.security_key is not None:
        args += ["--api-key", config.api_key, "--security-key", config.security_key]
    return args


class SimulatorServer:
    """Serve a simulator on 127.0.0.1 on a free port for the duration of a `with` block."""

    def __init__(self, config: SimulatorConfig | None = None, *, subprocess: bool = False) -> None:
        self.config = config or SimulatorConfig()
        self.subprocess = subprocess
        self.store: SimulatorStore | None = None
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._proc: sp.Popen | None = None

    def __enter__(self) -> SimulatorServer:
        if self.subprocess:
            self._start_process()
        else:
            self._start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except sp.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _start_thread(self) -> None:
        self.store = build_store(self.config)
        sock = _bind("127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = _uvicorn(build_app(self.store, self.config))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        daemon=True, name="imednet-simulator")
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("simulator server failed to start")
            self._thread.join(0.01)

    def _start_process(self) -> None:
        cmd = [sys.executable, "-m", "imednet_assets.simulator",
               *_cli_args(self.config, "127.0.0.1", 0)]
        self._proc = sp.Popen(cmd, stdout=sp.PIPE, text=True, env=dict(os.environ))
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line.startswith("http"):
            self._proc.kill()
            raise RuntimeError(f"simulator process failed to start: {line!r}")
        self.base_url = line.split()[0].rstrip("/")

    # --- /_sim helpers ------------------------------------------------------------------
    def control(self, method: str, path: str, json: dict | None = None) -> Any:
        """Call a `/_sim/` control route and return its JSON."""
        r = httpx.request(method, f"{self.base_url}/_sim/{path}", json=json, timeout=60)
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def set_faults(self, **knobs: Any) -> dict:
        return self.control("POST", "faults", knobs)

    def advance(self, **kw: Any) -> dict:
        return self.control("POST", "advance", kw)

    def requests(self) -> int:
        """API requests the simulator has received so far."""
        return int(self.set_faults()["requests"])


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """The `simulate` command's options."""
    d = SimulatorConfig()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--studies", type=int, default=d.studies)
    parser.add_argument("--subjects", type=int, default=d.subjects, help="per study")
    parser.add_argument("--latency-ms", type=float, default=d.latency_ms)
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    parser.add_argument("--error-rate", type=float, default=d.error_rate)
    parser.add_argument("--malformed-rate", type=float, default=d.malformed_rate)
    parser.add_argument("--hostile", action="store_true")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--security-key", default=None)
    parser.add_argument("--max-page-size", type=int, default=d.max_page_size)
    parser.add_argument("--oversize", choices=("clamp", "reject"), default=d.oversize)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    fields = asdict(SimulatorConfig())
    return SimulatorConfig(**{k: getattr(args, k) for k in fields if hasattr(args, k)})


def run_from_args(args: argparse.Namespace) -> None:
    """Build the store, bind, print the URL (one line) and serve until interrupted."""
    config = config_from_args(args)
    if (config.api_key is None) != (config.security_key is None):
        raise SystemExit("--api-key and --security-key go together")
    store = build_store(config)
    sock = _bind(args.host, args.port)
    print(f"http://{args.host}:{sock.getsockname()[1]}", flush=True)
    _uvicorn(build_app(store, config)).run(sockets=[sock])
