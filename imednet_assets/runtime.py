"""Process-wide settings every process of the package starts with, set before pyarrow and numpy
load (the package imports this first); a value the environment already has is kept.

- Arrow's memory pool: jemalloc. pyarrow's default on Linux (mimalloc) hands large freed
  buffers back to the OS, so each folder a lake merge reads and rewrites faults its pages in
  again: an incremental refresh spent more CPU in the kernel than in Arrow. Set through
  `ARROW_DEFAULT_MEMORY_POOL` before Arrow loads, it also holds Parquet's own buffers, which do
  not go through pyarrow's default pool.
- numpy's OpenBLAS: one thread. Its idle threads spin on the cores while waiting for work,
  and the package does no linear algebra that would give them any.

Once the definitions are built, `freeze_loaded` takes what is loaded out of the cyclic garbage
collector's reach (see there).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
BLAS_THREADS_ENV = "OPENBLAS_NUM_THREADS"
JEMALLOC = "jemalloc"


def configure() -> str:
    """Apply the settings; returns the name of Arrow's memory pool."""
    if sys.platform.startswith("linux"):  # pyarrow's Linux wheels carry jemalloc
        os.environ.setdefault(POOL_ENV, JEMALLOC)
    os.environ.setdefault(BLAS_THREADS_ENV, "1")
    import pyarrow as pa

    if os.environ.get(POOL_ENV, JEMALLOC) == JEMALLOC and (
            pa.default_memory_pool().backend_name != JEMALLOC):
        # pyarrow loaded before the package (or elsewhere than Linux): its Python calls at least
        # get jemalloc; a build without it keeps its default
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    return pa.default_memory_pool().backend_name


def freeze_loaded() -> int:
    """Move every object alive now (modules, classes, the Dagster definitions: about 190,000
    of them) to the collector's permanent generation, so that a full collection during a run no
    longer walks them: each one cost about 100 ms, at any point of a run (an incremental
    refresh takes about 0.5 s). They are unfrozen at exit, where extension modules check that
    their objects were released. Returns how many objects are frozen."""
    gc.freeze()
    atexit.unregister(gc.unfreeze)  # once, however often the definitions are rebuilt
    atexit.register(gc.unfreeze)
    return gc.get_freeze_count()
