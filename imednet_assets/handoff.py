"""A bounded queue from a producer thread to its consumer: items arrive in order, the producer's
error is raised to the consumer, and a producer stops when the consumer goes away. Memory stays
bounded by the queue's depth."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_PUT_POLL_S = 0.1
_DONE = object()


@dataclass(frozen=True)
class _Failure:
    exc: BaseException


class Handoff:
    """The queue and the stop signal one producer and one consumer share."""

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()

    def put(self, item: Any) -> bool:
        """Blocking put that gives up (False) when the consumer has gone away."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def finish(self) -> None:
        """The producer is done: the consumer's iteration ends."""
        self.put(_DONE)

    def fail(self, exc: BaseException) -> None:
        """The producer failed: the consumer raises `exc`."""
        self.put(_Failure(exc))

    def drain(self) -> Iterator[Any]:
        """The consumer's side: every item until the producer finishes or fails."""
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        """The consumer is gone: a producer blocked on a full queue gives up."""
        self._stop.set()


class Background(Generic[T]):
    """`items` produced in a background thread that starts at once, `depth` ahead of the one
    consumer; errors reach the consumer, and `close` stops the producer (and closes `items`)."""

    def __init__(self, items: Iterator[T], depth: int = 2, *, name: str = "background") -> None:
        self._hand = Handoff(depth)
        self._items = items
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._hand.put(item):
                    return
            self._hand.finish()
        except BaseException as exc:  # handed to the consumer, who re-raises it
            self._hand.fail(exc)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        return self._hand.drain()

    def close(self, timeout_s: float | None = None) -> None:
        self._hand.close()
        self._thread.join(timeout_s)


def prefetch(items: Iterator[T], depth: int = 2, *, name: str = "prefetch") -> Generator[T]:
    """`items` produced in a background thread named `name`, `depth` ahead of the consumer.
    Errors reach the consumer; closing the generator stops the producer."""
    producer = Background(items, depth, name=name)
    try:
        yield from producer
    finally:
        producer.close()
