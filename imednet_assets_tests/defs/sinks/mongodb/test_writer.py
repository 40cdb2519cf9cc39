"""The writer's read-ahead: batches keep their order, a producer error reaches the writer, and a
writer that stops early stops the producer."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from imednet_assets.defs.sinks.mongodb.writer import PREFETCH_THREAD
from imednet_assets.handoff import prefetch


def test_prefetch_keeps_order_and_raises_the_producers_error() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("lake file unreadable")

    got: list[int] = []
    with pytest.raises(ValueError, match="lake file unreadable"):
        for item in prefetch(items(), name=PREFETCH_THREAD):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]


def test_prefetch_stops_the_producer_when_the_consumer_stops() -> None:
    produced: list[int] = []

    def items() -> Iterator[int]:
        for i in range(1_000):
            produced.append(i)
            yield i

    stream = prefetch(items(), depth=2, name=PREFETCH_THREAD)
    assert next(stream) == 0
    stream.close()  # what a failing batch does to the loop
    assert not [t for t in threading.enumerate() if t.name == PREFETCH_THREAD]
    assert len(produced) < 10
