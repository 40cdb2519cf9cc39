"""The package picks Arrow's memory pool when it is imported; the user's choice wins."""

import os
import subprocess
import sys

import pytest

from imednet_assets.arrow_memory import POOL_ENV


def _pool_after_import(env_pool: str | None) -> str:
    """The default pool of a fresh interpreter that imported the package (a subprocess: this
    one's pool is already set)."""
    env = {k: v for k, v in os.environ.items() if k != POOL_ENV}
    if env_pool is not None:
        env[POOL_ENV] = env_pool
    code = "import imednet_assets, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_importing_the_package_makes_jemalloc_the_pool() -> None:
    assert _pool_after_import(None) == "jemalloc"


@pytest.mark.parametrize("chosen", ["system", "mimalloc"])
def test_a_pool_named_in_the_environment_is_kept(chosen: str) -> None:
    assert _pool_after_import(chosen) == chosen
