"""The walk over the lake, PostgreSQL and Snowflake (the fakesnow server)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imednet_assets.local_servers.postgres import temporary_database
from imednet_assets.local_servers.snowflake import LocalSnowflake
from imednet_assets_tests.convergence.walk import (
    FILE_TARGETS,
    STEPS,
    Walk,
    snowflake_target,
    sql_target,
    walk_and_compare,
)


@pytest.fixture
def servers() -> Iterator[dict[str, Any]]:
    """fakesnow on loopback and a throw-away database on the local PostgreSQL."""
    with tempfile.TemporaryDirectory(prefix="imednet-walk-") as folder, \
            LocalSnowflake(Path(folder)) as snow, temporary_database("imednet_walk") as pg:
        yield {"snowflake": snow, "sql": pg}


@pytest.mark.walk
@pytest.mark.timeout(1800)
def test_sql_and_snowflake_converge_over_a_random_walk(sim, servers, tmp_path):
    lake = FILE_TARGETS[0]  # every run ingests: the lake is compared too
    targets = [lake, sql_target(servers["sql"]), snowflake_target(servers["snowflake"])]
    assert len(walk_and_compare(Walk(sim, targets, tmp_path))) == STEPS
