"""Synchronous façade for Dagster's sync code: the async client runs in a background thread with
its own event loop and hands batches over a bounded queue, so memory stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import Any, TypeVar

import pyarrow as pa

from imednet_assets.client.arrow import ENDPOINTS, SCHEMAS
from imednet_assets.client.client import ImednetClient
from imednet_assets.client.settings import ClientSettings
from imednet_assets.handoff import Handoff

T = TypeVar("T")


def iter_batches_sync(
    settings: ClientSettings,
    entity: str,
    study_key: str | None,
    *,
    queue_size: int = 2,
    **kw: Any,
) -> Iterator[pa.RecordBatch]:
    """Stream `entity` batches of one study; errors are raised to the consumer, and closing the
    iterator early cancels the producer (its HTTP connections are closed)."""
    hand = Handoff(queue_size)
    running: dict[str, Any] = {}

    async def produce() -> None:
        async with (
            ImednetClient(settings) as client,
            aclosing(client.iter_batches(entity, study_key, **kw)) as batches,
        ):
            async for batch in batches:
                # block in a worker thread, not on the loop, so in-flight requests progress
                if not await asyncio.to_thread(hand.put, batch):
                    return

    def run() -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(produce())
            running.update(loop=loop, task=task)
            loop.run_until_complete(task)
            hand.finish()
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # handed to the consumer, who re-raises it
            hand.fail(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"imednet-{entity}-{study_key}", daemon=True)
    thread.start()
    try:
        yield from hand.drain()
    finally:
        hand.close()
        loop, task = running.get("loop"), running.get("task")
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        thread.join(timeout=settings.timeout_s)


def fetch_all_sync(
    settings: ClientSettings, entity: str, study_key: str | None, **kw: Any
) -> pa.Table:
    """All batches of a small entity as one Table (empty with the schema when there is nothing)."""
    batches = list(iter_batches_sync(settings, entity, study_key, **kw))
    return pa.Table.from_batches(batches, schema=SCHEMAS[entity])


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh loop in a worker thread (safe even if the caller has a loop)."""

    async def main() -> T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


def list_studies_sync(settings: ClientSettings) -> list[dict[str, Any]]:
    """Every study the keys may see."""

    async def fetch() -> list[dict[str, Any]]:
        async with ImednetClient(settings) as client:
            return await client.list_studies()

    return _run(fetch)


def count_sync(settings: ClientSettings, entity: str, study_key: str | None) -> int:
    """The API's item count of an entity for a study (`totalElements`)."""

    async def fetch() -> int:
        async with ImednetClient(settings) as client:
            return await client.count(ENDPOINTS[entity], study_key)

    return _run(fetch)


def probe_sync(
    settings: ClientSettings, entity: str, study_key: str | None, *,
    filter: str | None = None, sort: str | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """`ImednetClient.probe` for sync code: (matching items, the first in `sort` order)."""

    async def fetch() -> tuple[int, dict[str, Any] | None]:
        async with ImednetClient(settings) as client:
            return await client.probe(ENDPOINTS[entity], study_key, filter=filter, sort=sort)

    return _run(fetch)
