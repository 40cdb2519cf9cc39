"""A real HTTP server on 127.0.0.1 answering from a script of replies, recording every request.

Used where a test needs an exact fault sequence; the code under test (the client) is untouched.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None  # raw body, wins over json (for malformed answers)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    raw_path: str
    params: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    started: float  # time.time() when the request arrived
    finished: float = 0.0

    @property
    def page(self) -> int | None:
        return int(self.params["page"][0]) if "page" in self.params else None


def envelope(page: int, total_pages: int, data: list[dict], size: int = 500) -> dict:
    """The documented list envelope for one page."""
    return {
        "metadata": {"status": "OK", "method": "GET", "path": "/", "error": {}},
        "pagination": {
            "currentPage": page,
            "size": size,
            "totalPages": total_pages,
            "totalElements": total_pages * len(data),
            "sort": [],
        },
        "data": data,
    }


def error_body(code: str, description: str, **field_: str) -> dict:
    error: dict[str, Any] = {"code": code, "description": description}
    if field_:
        error["field"] = field_
    return {"metadata": {"status": "ERROR", "path": "/", "error": error}}


def paged(total_pages: int, rows: int = 2, delay: Callable[[int], float] = lambda p: 0.0):
    """A fallback answering any GET page with `rows` rows whose `n` is page*rows+i."""

    def answer(seen: Seen) -> Reply:
        page = seen.page or 0
        data = [{"n": page * rows + i} for i in range(rows)]
        return Reply(json=envelope(page, total_pages, data), delay_s=delay(page))

    return answer


class ScriptedServer:
    """`with ScriptedServer(fallback) as srv:` serves on `srv.base_url`; `srv.script(...)` queues
    replies used before the fallback; `srv.requests` / `srv.max_in_flight` tell what happened."""

    def __init__(self, fallback: Callable[[Seen], Reply] | None = None) -> None:
        self.fallback = fallback or (lambda seen: Reply(404, json=error_body("404", "no script")))
        self.queue: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    async def _handle(self, request: Request) -> Response:
        seen = Seen(
            method=request.method,
            path=request.url.path,
            raw_path=request.scope["raw_path"].decode(),
            params={k: request.query_params.getlist(k) for k in request.query_params},
            headers=dict(request.headers),
            body=await request.body(),
            started=time.time(),
        )
        self.requests.append(seen)
        self.in_flight += 1  # one event loop: no lock needed
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.queue.popleft() if self.queue else self.fallback(seen)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            body = reply.body if reply.body is not None else orjson.dumps(reply.json)
            return Response(
                body, status_code=reply.status, headers=reply.headers, media_type="application/json"
            )
        finally:
            self.in_flight -= 1
            seen.finished = time.time()

    def __enter__(self) -> ScriptedServer:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("scripted server failed to start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
