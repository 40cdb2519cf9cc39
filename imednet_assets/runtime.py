"""Process-wide settings every process of the package starts with, set before pyarrow and numpy
load (the package imports this first); a value the environment already has is kept.

- Arrow's memory pool: jemalloc. pyarrow's default on Linux (mimalloc) hands large freed
  buffers back to the OS, so each folder a lake merge reads and rewrites faults its pages in
  again: an incremental refresh spent more CPU in the kernel than in Arrow. Set through
  `ARROW_DEFAULT_MEMORY_POOL` before Arrow loads, it also holds Parquet's own buffers, which do
  not go through pyarrow's default pool.
- numpy's OpenBLAS: one thread. Its idle threads spin on the cores while waiting for work,
  and the package does no linear algebra that would give them any.
"""

from __future__ import annotations

import contextlib
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
