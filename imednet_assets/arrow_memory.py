"""Arrow's memory pool for every process of the package: jemalloc, where the wheel has it.

pyarrow's default pool on Linux (mimalloc) hands large freed buffers back to the OS, so each
folder a lake merge reads and rewrites faults its pages in again: an incremental refresh of a
100,000-record study spent more CPU in the kernel than in Arrow (see docs/benchmarks.md).
Arrow's jemalloc keeps freed pages about a second and reuses them, so memory stays bounded.
A pool the user names in `ARROW_DEFAULT_MEMORY_POOL` is left alone.
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def use_jemalloc() -> str:
    """Make jemalloc Arrow's default pool unless the environment chose one; returns the pool's
    name."""
    if not os.environ.get(POOL_ENV):
        # a pyarrow built without jemalloc keeps its default
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    return pa.default_memory_pool().backend_name
