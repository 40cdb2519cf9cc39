"""Suite-wide: the long convergence walks are collected first, so each of the two test workers
starts one at once and the rest of the suite fills in around them."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("walk") is None)  # stable sort
