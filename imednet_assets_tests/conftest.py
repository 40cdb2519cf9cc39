"""Suite-wide: the long convergence walks are collected first, so each of the two test workers
starts one at once, then the other files that take minutes, and the rest of the suite fills in
around them (longest first: no worker is left alone with a long file at the end)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: (item.get_closest_marker("walk") is None,
                                 item.get_closest_marker("slow") is None))  # stable sort
