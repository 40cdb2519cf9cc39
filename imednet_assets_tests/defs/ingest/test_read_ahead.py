"""ReadAhead: reads start a bounded window ahead of the consumer, come back whole and in order,
errors reach the consumer, and close stops reads nobody took."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from imednet_assets.defs.ingest.read_ahead import ReadAhead


class Reads:
    """Counts which reads started; read `i` yields `i * 10 + k` for k < 3."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.closed: list[int] = []
        self.lock = threading.Lock()

    def read(self, i: int, fail: bool = False) -> Iterator[int]:
        with self.lock:
            self.started.append(i)
        try:
            for k in range(3):
                if fail and k == 1:
                    raise ValueError(f"page {k} of read {i} is malformed")
                yield i * 10 + k
        finally:
            with self.lock:
                self.closed.append(i)


def _settle(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_reads_start_a_window_ahead_and_come_back_in_order() -> None:
    reads = Reads()
    ahead = ReadAhead(window=2)
    takes = [ahead.add(lambda i=i: reads.read(i), f"read-{i}") for i in range(6)]
    assert reads.started == []  # nothing runs before the run begins
    ahead.begin()
    _settle(lambda: len(reads.started) == 2)
    assert sorted(reads.started) == [0, 1]
    assert list(takes[0]()) == [0, 1, 2]
    _settle(lambda: len(reads.started) == 3)  # taking read 0 started read 2, not more
    time.sleep(0.1)
    assert sorted(reads.started) == [0, 1, 2]
    assert [list(t()) for t in takes[1:]] == [[10, 11, 12], [20, 21, 22], [30, 31, 32],
                                               [40, 41, 42], [50, 51, 52]]
    ahead.close()
    assert sorted(reads.closed) == list(range(6))


def test_an_error_reaches_the_consumer() -> None:
    reads = Reads()
    ahead = ReadAhead(window=3)
    take = ahead.add(lambda: reads.read(7, fail=True), "bad")
    ahead.begin()
    got = []
    with pytest.raises(ValueError, match="page 1 of read 7 is malformed"):
        for item in take():
            got.append(item)
    assert got == [70]
    ahead.close()


def test_close_stops_reads_nobody_took() -> None:
    produced = threading.Event()

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.set()
            yield n
            n += 1

    ahead = ReadAhead(window=1)
    ahead.add(endless, "endless")
    ahead.begin()
    assert produced.wait(5)
    ahead.close()  # the producer, blocked on its full queue, gives up
    _settle(lambda: not any(t.name == "endless" for t in threading.enumerate()))
