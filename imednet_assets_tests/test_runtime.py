"""The package sets up Arrow's memory pool and numpy's BLAS threads when it is imported, before
either loads; what the environment already says is kept."""

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from imednet_assets.runtime import BLAS_THREADS_ENV, POOL_ENV

# a fresh interpreter imports the package, then Parquet writes and reads a table: which pools
# served Arrow's allocations, Parquet's own buffers included. Through a file path, as the lake
# reads: after a threaded read from an in-memory file, pyarrow 26 aborts the interpreter at exit
# about half the time ("terminate called without an active exception", apache/arrow#34314).
PROBE = """
import json, os, sys
import imednet_assets
import pyarrow as pa, pyarrow.parquet as pq
table = pa.table({"k": list(range(100_000)), "v": [str(i) for i in range(100_000)]})
pq.write_table(table, sys.argv[1], compression="zstd")
pq.read_table(sys.argv[1])
print(json.dumps({"pool": pa.default_memory_pool().backend_name,
                  "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
                  "mimalloc": pa.mimalloc_memory_pool().max_memory(),
                  "jemalloc": pa.jemalloc_memory_pool().max_memory()}))
"""


def _probe(tmp_path: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in (POOL_ENV, BLAS_THREADS_ENV)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "probe.parquet")],
                         env={**clean, **env}, capture_output=True, text=True, check=True)
    return orjson.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jemalloc: Linux wheels")
def test_every_arrow_allocation_comes_from_jemalloc(tmp_path: Path):
    seen = _probe(tmp_path)
    assert seen["pool"] == "jemalloc"
    assert seen["jemalloc"] > 0
    assert seen["mimalloc"] == 0  # Parquet's buffers too, not only pyarrow's calls
    assert seen["blas"] == "1"


def test_what_the_environment_chose_is_kept(tmp_path: Path):
    seen = _probe(tmp_path, **{POOL_ENV: "system", BLAS_THREADS_ENV: "2"})
    assert seen["pool"] == "system"
    assert seen["jemalloc"] == seen["mimalloc"] == 0
    assert seen["blas"] == "2"


# a fresh interpreter builds the definitions: are they out of the collector's reach, and does
# the process still exit cleanly (extension modules report objects not released at exit)?
FREEZE_PROBE = """
import gc, json
from imednet_assets.definitions import defs
print(json.dumps({"frozen": gc.get_freeze_count(),
                  "defs_collectable": any(o is defs for o in gc.get_objects()),
                  "defs_tracked": gc.is_tracked(defs)}))
"""


def test_the_loaded_definitions_are_out_of_the_collectors_reach():
    out = subprocess.run([sys.executable, "-c", FREEZE_PROBE], capture_output=True, text=True,
                         check=True)
    seen = orjson.loads(out.stdout)
    assert seen["defs_tracked"]  # else the check below would prove nothing
    assert not seen["defs_collectable"]
    assert seen["frozen"] > 50_000  # modules, classes, definitions: not a handful
    assert "leaked" not in out.stderr  # unfrozen at exit, so the modules see them released
