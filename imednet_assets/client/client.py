"""Async iMednet client: auth, 0-based paging with bounded concurrency, retries, Arrow batches."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pyarrow as pa

from imednet_assets.client.arrow import ENDPOINTS, page_to_batch
from imednet_assets.client.errors import (
    ImednetConnectionError,
    ImednetJobFailed,
    ImednetJobTimeout,
    ImednetMalformedResponse,
    ImednetSourceChanged,
    error_for_status,
    target,
)
from imednet_assets.client.filters import Term, check_record_data_filter, term
from imednet_assets.client.retry import retryable_exception, retryable_status, wait_s
from imednet_assets.client.settings import ClientSettings
from imednet_assets.settings import redact

log = logging.getLogger("imednet_assets.client")

API_PREFIX = "/api/v1/edc/studies"
JOB_DONE = frozenset({"COMPLETED", "SUCCESS"})
JOB_FAILED = frozenset({"FAILED", "CANCELLED"})


def _where(endpoint: str, study_key: str | None, page: int | None) -> str:
    """`records for study S page 3`: the context of log lines and errors."""
    return target(endpoint, study_key) + (f" page {page}" if page is not None else "")


def _after(attempts: int) -> str:
    return f" after {attempts} attempts" if attempts > 1 else ""


def _json_or_none(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _is_int(value: Any) -> bool:
    return type(value) is int


def check_page(body: Any, page: int | None) -> None:
    """Raise ValueError unless `body` is the documented list envelope for `page`."""
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")
    if not isinstance(body.get("data"), list):
        raise ValueError("'data' is missing or not a list")
    pagination = body.get("pagination")
    if not isinstance(pagination, dict):
        raise ValueError("'pagination' is missing or not an object")
    for key in ("currentPage", "totalPages"):
        if not _is_int(pagination.get(key)):
            raise ValueError(f"pagination.{key} is missing or not an integer")
    for key in ("size", "totalElements"):
        if key in pagination and not _is_int(pagination[key]):
            raise ValueError(f"pagination.{key} is not an integer")
    if pagination["currentPage"] != page:
        raise ValueError(f"asked for page {page}, got currentPage {pagination['currentPage']}")


def _same_listing(
    first: dict[str, Any], body: dict[str, Any], endpoint: str, study_key: str | None
) -> None:
    """Refuse a listing whose size moved between page 0 and a later page (a record added or
    purged meanwhile shifts the offsets, so a row could be skipped or read twice)."""
    before, now = first["pagination"], body["pagination"]
    key = "totalElements" if "totalElements" in before and "totalElements" in now else "totalPages"
    if before[key] != now[key]:
        raise ImednetSourceChanged(
            f"{target(endpoint, study_key)}: the listing changed while it was read ({key} "
            f"{before[key]} on page 0, {now[key]} on page {now['currentPage']}); read it again",
            endpoint=endpoint,
            study_key=study_key,
        )


def _check_object(body: Any, page: int | None = None) -> None:
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context, built once per process: building one costs about
    50 ms of CPU, and every read opens a client (an incremental run makes 15 small reads)."""
    return httpx.create_ssl_context()


class ImednetClient:
    """One pooled HTTP/1.1 connection set to the API; use as `async with ImednetClient(s) as c`."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._rng = rng or random.Random()
        self._http: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"ImednetClient({self.settings!r})"

    async def __aenter__(self) -> ImednetClient:
        s = self.settings
        self._http = httpx.AsyncClient(
            base_url=s.base_url,
            headers={
                "x-api-key": s.api_key,
                "x-imn-security-key": s.security_key,
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=httpx.Timeout(s.timeout_s),
            limits=httpx.Limits(
                max_connections=s.concurrency, max_keepalive_connections=s.concurrency
            ),
            http1=True,
            http2=False,
            verify=tls_context(),
            transport=self._transport,
        )
        # one bound for every request of this client, across concurrent iterators too
        self._slots = asyncio.Semaphore(s.concurrency)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # ---------------------------------------------------------------- transport + retries

    async def _request(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        study_key: str | None,
        page: int | None = None,
        params: list[tuple[str, str]] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        validate: Callable[[Any, int | None], None] = _check_object,
    ) -> Any:
        """Send with retries (policy in retry.py); return the validated JSON body."""
        if self._http is None or self._slots is None:
            raise RuntimeError("use ImednetClient inside `async with`")
        s = self.settings
        where = _where(endpoint, study_key, page)
        ctx = dict(endpoint=endpoint, study_key=study_key)
        for attempt in range(1, s.max_attempts + 1):
            last = attempt == s.max_attempts
            retry_after: str | None = None
            try:
                async with self._slots:
                    response = await self._http.request(
                        method, path, params=params, content=content, headers=headers
                    )
            except httpx.TransportError as exc:
                if last or not retryable_exception(method, exc):
                    detail = redact(str(exc), s.secrets) or "no detail"
                    raise ImednetConnectionError(
                        f"{where}: cannot reach {s.host}{_after(attempt)} "
                        f"({type(exc).__name__}: {detail})",
                        attempts=attempt,
                        **ctx,
                    ) from exc
                reason = type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        body = orjson.loads(response.content)
                        validate(body, page)
                        return body
                    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError too
                        # a POST that answered 2xx has done its work: repeating it could duplicate
                        if last or method != "GET":
                            raise ImednetMalformedResponse(
                                f"{where}: malformed response{_after(attempt)} "
                                f"(HTTP {status}: {redact(str(exc), s.secrets)[:200]})",
                                status=status,
                                attempts=attempt,
                                **ctx,
                            ) from None
                        reason = f"malformed body ({str(exc)[:80]})"
                else:
                    if last or not retryable_status(method, status):
                        body = _json_or_none(response.content)
                        raise error_for_status(status, body, attempts=attempt, **ctx)
                    reason = f"HTTP {status}"
                    retry_after = response.headers.get("Retry-After")
            delay = wait_s(attempt - 1, s.backoff_base_s, s.backoff_max_s, retry_after, self._rng)
            log.warning(
                "retrying %s: %s; attempt %d of %d, waiting %.2f s",
                where,
                reason,
                attempt,
                s.max_attempts,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    # ---------------------------------------------------------------- paging

    def _path(self, endpoint: str, study_key: str | None) -> str:
        if endpoint == "studies":
            return API_PREFIX
        if endpoint not in ENDPOINTS.values():
            raise ValueError(f"unknown endpoint {endpoint!r}")
        if not study_key:
            raise ValueError(f"{endpoint} needs a study_key")
        return f"{API_PREFIX}/{quote(study_key, safe='')}/{endpoint}"

    def _list_params(
        self,
        filter: str | Term | None,
        record_data_filter: str | Term | None,
        sort: str | Sequence[str] | None,
    ) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = [("size", str(self.settings.page_size))]
        if filter is not None:
            params.append(("filter", str(filter)))
        if record_data_filter is not None:
            params.append(("recordDataFilter", check_record_data_filter(str(record_data_filter))))
        for key in [sort] if isinstance(sort, str) else list(sort or []):
            params.append(("sort", key))
        return params

    async def _get_page(
        self,
        path: str,
        params: list[tuple[str, str]],
        page: int,
        endpoint: str,
        study_key: str | None,
    ) -> dict[str, Any]:
        return await self._request(
            "GET",
            path,
            endpoint=endpoint,
            study_key=study_key,
            page=page,
            params=[("page", str(page)), *params],
            validate=check_page,
        )

    async def iter_pages(
        self,
        endpoint: str,
        study_key: str | None = None,
        *,
        filter: str | Term | None = None,
        record_data_filter: str | Term | None = None,
        sort: str | Sequence[str] | None = None,
        expected_rows: int | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield each page's `data` list in page order: page 0 first (it tells `totalPages`), then
        the rest fetched concurrently through a window of at most `concurrency` pages, so memory
        stays bounded however large the study is. `expected_rows` (what a probe just counted)
        starts the pages they fill together with page 0, a round trip sooner; a page past the
        end page 0 then tells is cancelled, or read and dropped."""
        path = self._path(endpoint, study_key)
        params = self._list_params(filter, record_data_filter, sort)
        window: deque[asyncio.Task[dict[str, Any]]] = deque()
        dropped: list[asyncio.Task[dict[str, Any]]] = []
        next_page = 1
        total = 1

        def refill() -> None:
            nonlocal next_page
            while next_page < total and len(window) < self.settings.concurrency:
                coro = self._get_page(path, params, next_page, endpoint, study_key)
                window.append(asyncio.ensure_future(coro))
                next_page += 1

        try:
            if expected_rows:
                total = min(-(-expected_rows // self.settings.page_size),
                            self.settings.concurrency)
                refill()
            first = await self._get_page(path, params, 0, endpoint, study_key)
            total = first["pagination"]["totalPages"]
            while next_page > max(total, 1):  # started for rows that are not there
                next_page -= 1
                dropped.append(window.pop())
                dropped[-1].cancel()
            yield first["data"]
            refill()
            while window:
                body = await window.popleft()
                _same_listing(first, body, endpoint, study_key)
                refill()  # keep fetching while the consumer works on this page
                yield body["data"]
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, *dropped, return_exceptions=True)

    async def iter_batches(
        self,
        entity: str,
        study_key: str | None,
        *,
        filter: str | Term | None = None,
        record_data_filter: str | Term | None = None,
        sort: str | Sequence[str] | None = None,
        expected_rows: int | None = None,
    ) -> AsyncIterator[pa.RecordBatch]:
        """Pages of `entity` (snake_case, see arrow.SCHEMAS) as RecordBatches in its schema
        (`expected_rows`: see `iter_pages`)."""
        if entity not in ENDPOINTS:
            raise ValueError(f"unknown entity {entity!r}; known: {', '.join(ENDPOINTS)}")
        if entity == "studies" and study_key is not None:
            # the study list is not per study: ask the server for just the requested one
            own = str(term("studyKey", "==", study_key))
            filter = own if filter is None else f"{own};{filter}"
        pages = self.iter_pages(
            ENDPOINTS[entity],
            study_key,
            filter=filter,
            record_data_filter=record_data_filter,
            sort=sort,
            expected_rows=expected_rows,
        )
        async with aclosing(pages):
            async for rows in pages:
                yield page_to_batch(entity, study_key, rows)

    async def count(self, endpoint: str, study_key: str | None = None) -> int:
        """How many items the endpoint lists for the study: one GET of page 0 with `size=1`."""
        total, _ = await self.probe(endpoint, study_key)
        return total

    async def probe(
        self,
        endpoint: str,
        study_key: str | None = None,
        *,
        filter: str | Term | None = None,
        sort: str | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """One GET of page 0 with `size=1`: how many items match `filter`, and the first of
        them in `sort` order (None when nothing matches). The cheapest question the API answers."""
        path = self._path(endpoint, study_key)
        params = [("size", "1")]
        if filter is not None:
            params.append(("filter", str(filter)))
        if sort is not None:
            params.append(("sort", sort))
        body = await self._get_page(path, params, 0, endpoint, study_key)
        pagination: dict[str, Any] = body["pagination"]
        first = body["data"][0] if body["data"] else None
        if "totalElements" in pagination:
            return int(pagination["totalElements"]), first
        # with one item per page the page count is the item count (an empty listing: no data)
        return (int(pagination["totalPages"]) if first is not None else 0), first

    async def list_studies(self) -> list[dict[str, Any]]:
        """Every study the keys may see."""
        studies: list[dict[str, Any]] = []
        async with aclosing(self.iter_pages("studies")) as pages:
            async for rows in pages:
                studies.extend(rows)
        return studies

    # ---------------------------------------------------------------- record import jobs

    async def post_records(
        self,
        study_key: str,
        records: list[dict[str, Any]],
        email_notify: str | bool | None = None,
    ) -> dict[str, Any]:
        """POST records (never repeated after a 5xx or read timeout); returns the job ticket."""
        headers: dict[str, str] = {}
        if email_notify is not None:
            value = str(email_notify).lower() if isinstance(email_notify, bool) else email_notify
            if "\n" in value or "\r" in value:
                raise ValueError("email_notify may not contain line breaks")
            headers["x-email-notify"] = value
        return await self._request(
            "POST",
            self._path("records", study_key),
            endpoint="records",
            study_key=study_key,
            content=orjson.dumps(records),
            headers=headers,
        )

    async def get_job(self, study_key: str, batch_id: str) -> dict[str, Any]:
        """The state of one import job."""
        path = f"{API_PREFIX}/{quote(study_key, safe='')}/jobs/{quote(batch_id, safe='')}"
        return await self._request("GET", path, endpoint="jobs", study_key=study_key)

    async def wait_for_job(
        self,
        study_key: str,
        batch_id: str,
        *,
        interval_s: float = 5.0,
        timeout_s: float = 300.0,
    ) -> dict[str, Any]:
        """Poll until the job completes; raise ImednetJobFailed / ImednetJobTimeout otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        ctx: dict[str, Any] = dict(endpoint="jobs", study_key=study_key)
        while True:
            job = await self.get_job(study_key, batch_id)
            state = str(job.get("state") or "").upper()
            if state in JOB_DONE:
                return job
            if state in JOB_FAILED:
                raise ImednetJobFailed(f"job {batch_id} of study {study_key}: {state}", **ctx)
            if loop.time() + interval_s > deadline:
                raise ImednetJobTimeout(
                    f"job {batch_id} of study {study_key}: still {state or 'unknown'} "
                    f"after {timeout_s:g} s",
                    **ctx,
                )
            await asyncio.sleep(interval_s)

