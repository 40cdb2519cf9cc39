"""`imednet-assets` as a newcomer runs it: demo twice, a refused account, a killed run."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import duckdb
import pytest

from imednet_assets.local_servers import free_port
from imednet_assets.local_servers.postgres import temporary_database
from imednet_assets.simulator import SimulatorConfig, SimulatorServer

pytestmark = pytest.mark.slow  # minutes: collected early (see the suite's conftest)

API_KEY = "cli-api-key-5d1c"
SECURITY_KEY = "cli-security-key-88a2"


# the settings of the API and of every destination: a test sets what it means to use
CONFIG_PREFIXES = ("IMEDNET", "MONGODB", "SNOWFLAKE", "NEO4J", "FALKORDB")


def cli_env(env: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}, **env}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imednet_assets.cli", *args],
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def sim_env(sim: SimulatorServer, data: Path) -> dict[str, str]:
    """The CLI's environment for `data` against the test simulator, with its keys."""
    return {"IMEDNET_ASSETS_DATA_DIR": str(data), "IMEDNET_BASE_URL": sim.base_url,
            "IMEDNET_API_KEY": API_KEY, "IMEDNET_SECURITY_KEY": SECURITY_KEY}


def snapshot(data: Path) -> dict[str, str]:
    """What readers see: every lake file's bytes (not staging or trash), every CSV of the
    bundles but `information.csv` (it states the extraction time, which a new run moves) and
    every DuckDB table's rows, hashed."""
    out = {
        str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((data / "lake").rglob("*.parquet"))
        if not any(part.startswith(".") for part in p.relative_to(data).parts)
    }
    for bundle in sorted((data / "bundles").glob("*/*.csv.zip")):
        with zipfile.ZipFile(bundle) as zf:
            for name in zf.namelist():
                if name != "information.csv":
                    digest = hashlib.sha256(zf.read(name)).hexdigest()
                    out[f"{bundle.relative_to(data)}/{name}"] = digest
    with duckdb.connect(str(data / "imednet.duckdb"), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
                             "ORDER BY 1").fetchall()
        for (table,) in tables:
            rows = con.execute(f'SELECT * FROM "{table}" ORDER BY ALL').fetchall()
            out[f"table {table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def test_demo_twice_on_the_simulator_leaves_everything_identical(tmp_path: Path) -> None:
    env = {"IMEDNET_ASSETS_DATA_DIR": str(tmp_path / "data")}
    first = run_cli("demo", "--studies", "2", "--subjects", "3", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "study CARDIO-01: ok" in first.stdout and "study ONCO-02: ok" in first.stdout
    # while it works, each study's steps show on stderr (one line per step off a terminal)
    progress = [line for line in first.stderr.splitlines() if line.startswith("study ONCO-02: ")]
    assert progress and all(re.fullmatch(
        r"study ONCO-02: (imednet_ingest|\w+_write|\w+__\w+), [\d,]+ lake rows( - .+)? \(\d+ s\)",
        line) for line in progress), progress
    before = snapshot(tmp_path / "data")
    assert any(k.startswith("lake/records/study_key=ONCO-02/form_key=") for k in before)
    assert {"table records_long", "table form_VS", "table variables"} <= set(before)
    assert "bundles/ONCO-02/ONCO-02.csv.zip/form_VS.csv" in before

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


def test_a_demo_killed_mid_write_then_run_again_ends_as_a_clean_run(tmp_path: Path) -> None:
    config = SimulatorConfig(seed=5, studies=2, subjects=30, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    with SimulatorServer(config) as sim:
        assert run_cli("demo", env=sim_env(sim, tmp_path / "clean")).returncode == 0
        clean = snapshot(tmp_path / "clean")

        data = tmp_path / "killed"
        assert run_cli("demo", env=sim_env(sim, data)).returncode == 0
        # replay with slow pages, and kill -9 once the second study's records are half staged
        sim.set_faults(latency_ms=300)
        victim = subprocess.Popen(
            [sys.executable, "-m", "imednet_assets.cli", "demo"], env=cli_env(sim_env(sim, data)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        staging = data / "lake" / "records" / ".staging" / "study_key=ONCO-02"
        deadline = time.monotonic() + 120
        while not list(staging.rglob("*.parquet")) and victim.poll() is None:
            assert time.monotonic() < deadline, "the demo never staged ONCO-02's records"
            time.sleep(0.01)
        victim.kill()
        assert victim.wait() == -signal.SIGKILL
        assert list(staging.rglob("*.parquet"))  # killed mid-write, half a slice on disk
        assert snapshot(data) == clean  # readers still see the old slices, whole

        sim.set_faults(latency_ms=0)
        assert run_cli("demo", env=sim_env(sim, data)).returncode == 0
    assert snapshot(data) == clean
    assert not list((data / "lake").glob("*/.staging/*/*"))  # the dead writer's staging is gone
    assert not list((data / "lake").glob("*/.trash/*"))


def test_demo_with_local_servers_materializes_every_destination(tmp_path: Path) -> None:
    """`demo --local-servers`: nx-27017, fakesnow and FalkorDB started, PostgreSQL given; every
    destination's assets run for every study and report what they wrote."""
    with temporary_database("imednet_cli_test") as pg:
        sql_url = pg.render_as_string(hide_password=False)
        env = {"IMEDNET_ASSETS_DATA_DIR": str(tmp_path / "data"), "IMEDNET_ASSETS_SQL_URL": sql_url}
        done = run_cli("demo", "--local-servers", "--studies", "2", "--subjects", "3", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert [line.split(" (")[0] for line in out.splitlines() if line.startswith("started:")] == [
        "started: MongoDB", "started: Snowflake", "started: graph"]
    assert ("destinations: parquet lake, duckdb, graph, mongodb, snowflake, sql, bundles, "
            "statistical, odm") in out
    summary = out[out.index("destination asset (rows written)"):out.index("\ntook ")]
    written = {line.split()[0]: line.split()[1:] for line in summary.splitlines()[1:] if line}
    assert set(written) == {
        "bundles/csv", "bundles/json", "bundles/xlsx", "graph/study_graph", "mongodb/records",
        "mongodb/subjects", "snowflake/dictionary", "snowflake/form_tables",
        "snowflake/records_long", "snowflake/subjects", "snowflake/visits", "sql/dictionary",
        "sql/form_tables", "sql/records_long", "sql/subjects", "sql/visits",
        "statistical/xpt", "statistical/sav", "statistical/dta", "odm/snapshot",
        "odm/transactional",
    }  # fmt: skip
    # the same records everywhere: 3 subjects x 50 records per study
    for asset in ("mongodb/records", "snowflake/form_tables", "sql/form_tables", "bundles/csv"):
        assert written[asset] == ["150", "150"], asset
    assert all(int(n.replace(",", "")) > 0 for counts in written.values() for n in counts)


def test_demo_with_an_unreachable_destination_says_so_once_without_secrets(tmp_path: Path) -> None:
    """A configured destination that does not answer fails its steps with one redacted line each
    study; the rest of the demo still lands and the exit code says something failed."""
    dead = f"mongodb://alice:mongo-pw-9f3@127.0.0.1:{free_port()}/"
    env = {"IMEDNET_ASSETS_DATA_DIR": str(tmp_path / "data"), "MONGODB_URI": dead}
    done = run_cli("demo", "--studies", "1", "--subjects", "2", env=env)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "mongo-pw-9f3" not in out and "Traceback" not in out
    port = dead.rsplit(":", 1)[1].rstrip("/")
    assert (
        f"  mongodb_write: MongoDB at mongodb://***@127.0.0.1:{port}/ "
        "(database imednet) is unreachable" in done.stdout
    )
    assert "bundles/csv" in done.stdout  # the other destinations still wrote the study
    assert done.stderr.strip().splitlines()[-1] == "failed studies: CARDIO-01"


def contents(data: Path) -> dict[str, str]:
    """What readers see, whatever the file layout: every lake slice's rows (sorted), the bundles'
    CSVs (but `information.csv`) and every DuckDB data table, hashed; sync state left out."""
    import pyarrow.dataset as pads

    out = {}
    for slice_dir in sorted((data / "lake").glob("*/study_key=*")):
        files = [str(p) for p in sorted(slice_dir.rglob("*.parquet"))]
        table = pads.dataset(files, format="parquet").to_table()
        rows = sorted(repr(sorted(r.items())) for r in table.to_pylist())
        out[str(slice_dir.relative_to(data))] = hashlib.sha256(repr(rows).encode()).hexdigest()
    for key, digest in snapshot(data).items():
        if not key.startswith("lake/"):
            out[key] = digest
    return out


def test_refresh_brings_the_data_dir_to_what_a_fresh_demo_writes(tmp_path: Path) -> None:
    config = SimulatorConfig(seed=9, studies=2, subjects=4, api_key=API_KEY,
                             security_key=SECURITY_KEY)
    with SimulatorServer(config) as sim:
        data = tmp_path / "kept"
        assert run_cli("demo", env=sim_env(sim, data)).returncode == 0
        quiet = run_cli("refresh", env=sim_env(sim, data))
        assert quiet.returncode == 0, quiet.stdout[-3000:] + quiet.stderr[-3000:]
        assert "study CARDIO-01 (incremental): ok" in quiet.stdout
        assert "imednet/records" in quiet.stdout

        sim.advance(study_key="CARDIO-01", modify=3, add=2, delete=1, delete_subjects=1)
        sim.advance(study_key="ONCO-02", modify=1, purge=1)
        done = run_cli("refresh", env=sim_env(sim, data))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        lines = [line.split() for line in done.stdout.splitlines()]
        records = [line for line in lines if line[:1] == ["imednet/records"]]
        assert records[0][1:8] == ["incremental:", "inserted", "2,", "updated", "4,", "deleted",
                                   "1"], done.stdout
        before, after = " ".join(records[0]).split(" -> ")
        assert before[-19:] < after  # the watermark moved on
        assert records[1][1] == "full", done.stdout  # the purge: counts disagreed
        assert run_cli("demo", env=sim_env(sim, tmp_path / "fresh")).returncode == 0
        assert contents(data) == contents(tmp_path / "fresh")
