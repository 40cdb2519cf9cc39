"""The `imednet-assets` command as a newcomer runs it: demo twice, and a refused account."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from imednet_assets.simulator import SimulatorConfig, SimulatorServer

API_KEY = "cli-api-key-5d1c"
SECURITY_KEY = "cli-security-key-88a2"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMEDNET")}
    return subprocess.run(
        [sys.executable, "-m", "imednet_assets.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def snapshot(data: Path) -> dict[str, str]:
    """Every lake file's bytes and every DuckDB table's rows, hashed."""
    out = {
        str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((data / "lake").rglob("*.parquet"))
    }
    with duckdb.connect(str(data / "imednet.duckdb"), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        for (table,) in tables:
            rows = con.execute(f'SELECT * FROM "{table}" ORDER BY ALL').fetchall()
            out[f"table {table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def test_demo_twice_on_the_simulator_leaves_everything_identical(tmp_path: Path) -> None:
    env = {"IMEDNET_ASSETS_DATA_DIR": str(tmp_path / "data")}
    first = run_cli("demo", "--studies", "2", "--subjects", "3", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "study CARDIO-01: ok" in first.stdout and "study ONCO-02: ok" in first.stdout
    before = snapshot(tmp_path / "data")
    assert any(k.startswith("lake/records/study_key=ONCO-02/form_key=") for k in before)
    assert {"table records_long", "table form_VS", "table variables"} <= set(before)

    second = run_cli("demo", "--studies", "2", "--subjects", "3", env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert snapshot(tmp_path / "data") == before


def test_demo_with_refused_keys_says_so_in_one_line(tmp_path: Path) -> None:
    config = SimulatorConfig(seed=3, studies=1, subjects=2, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    with SimulatorServer(config) as sim:
        done = run_cli("demo", env={
            "IMEDNET_ASSETS_DATA_DIR": str(tmp_path / "data"),
            "IMEDNET_BASE_URL": sim.base_url,
            "IMEDNET_API_KEY": API_KEY + "-wrong",
            "IMEDNET_SECURITY_KEY": SECURITY_KEY,
        })
    assert done.returncode == 2
    assert done.stderr == (
        "imednet-assets demo: studies: HTTP 401 (code 9001: Insufficient permission to retrieve "
        "data)\n"
    )
    assert API_KEY not in done.stdout + done.stderr
    assert SECURITY_KEY not in done.stdout + done.stderr
