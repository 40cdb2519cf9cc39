"""Reads an incremental run starts ahead of the lake.

The lake writes the run's slices one after the other, and an incremental slice costs a few small
API requests (its changes, its count). Asked one at a time, their latencies add up; started a few
ahead, they overlap. At most `window` reads run ahead of the lake, each with the client's own
bounded concurrency and a bounded queue, so memory and the load on the API stay bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from imednet_assets.handoff import Background

T = TypeVar("T")


class _Read(Generic[T]):
    def __init__(self, start: Callable[[], Iterator[T]], name: str) -> None:
        self.start, self.name = start, name
        self.running: Background[T] | None = None

    def begin(self) -> None:
        if self.running is None:
            self.running = Background(self.start(), name=self.name)


class ReadAhead:
    """Reads registered in the order the lake will consume them; taking one starts the next
    `window` ones. `close` stops every read nobody took (a run that ended early)."""

    def __init__(self, window: int) -> None:
        self.window = max(1, window)
        self._reads: list[_Read] = []

    def add(self, start: Callable[[], Iterator[T]], name: str) -> Callable[[], Iterator[T]]:
        """Register a read; returns what takes it (once): its items, read ahead in the
        background."""
        index = len(self._reads)
        self._reads.append(_Read(start, name))

        def take() -> Iterator[T]:
            read = self._reads[index]
            for later in self._reads[index: index + 1 + self.window]:
                later.begin()
            assert read.running is not None
            return iter(read.running)

        return take

    def begin(self) -> None:
        """Start the first `window` reads now, before the lake asks for any."""
        for read in self._reads[: self.window]:
            read.begin()

    def close(self) -> None:
        for read in self._reads:
            if read.running is not None:
                read.running.close(timeout_s=5)
