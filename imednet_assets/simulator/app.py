"""The ASGI app: the iMednet REST API (envelope, paging, filters, auth, errors) and `/_sim/`.

Each API request: latency -> scripted/random fault -> auth -> handler -> maybe a broken body.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from imednet_assets.simulator import generator as gen
from imednet_assets.simulator.faults import FaultState, malform
from imednet_assets.simulator.filters import FilterError
from imednet_assets.simulator.store import (
    ApiError,
    SimulatorConfig,
    SimulatorStore,
    total_pages,
)

PREFIX = "/api/v1/edc/studies"
LIST_ENDPOINTS = {"sites", "subjects", "intervals", "forms", "variables", "visits", "records",
                  "recordRevisions", "queries", "codings", "users"}
_DESCRIPTIONS = {"1000": "Field raised validation errors", "9000": "Unknown error",
                 "9001": "Insufficient permission to retrieve data"}


def _json(obj: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(obj), status, headers=headers, media_type="application/json")


def build_app(store: SimulatorStore, config: SimulatorConfig) -> Starlette:
    """An ASGI app serving `store` with the knobs of `config` (changeable via /_sim/faults)."""
    faults = FaultState(config.seed, config.latency_ms, config.rate_limit, config.error_rate,
                        config.malformed_rate)

    def error(request: Request, status: int, code: str, description: str | None = None,
              attribute: str | None = None, value: str = "",
              headers: dict | None = None) -> Response:
        err: dict = {"code": code, "description": description or _DESCRIPTIONS.get(code, "")}
        if attribute:
            err["field"] = {"attribute": attribute, "value": value}
        meta = {"status": HTTPStatus(status).name, "method": request.method,
                "path": request.url.path, "timestamp": gen.ts(store.clock), "error": err}
        return _json({"metadata": meta}, status, headers)

    def authorised(request: Request) -> bool:
        api, sec = request.headers.get("x-api-key"), request.headers.get("x-imn-security-key")
        if not api or not sec:
            return False
        if config.api_key is not None and api != config.api_key:
            return False
        return config.security_key is None or sec == config.security_key

    def envelope(request: Request, study_key: str | None, entity: str) -> Response:
        q = request.query_params
        page = _int_param(q, "page", 0)
        size = _int_param(q, "size", 25)
        if page < 0:
            raise ApiError(400, "1000", _DESCRIPTIONS["1000"], "page", q["page"])
        if size < 1 or (size > config.max_page_size and config.oversize == "reject"):
            raise ApiError(400, "1000", _DESCRIPTIONS["1000"], "size", q["size"])
        size = min(size, config.max_page_size)
        total, rows, sort = store.list_page(
            entity, study_key, filter=q.get("filter") or None,
            record_data_filter=q.get("recordDataFilter") or None, sort=q.getlist("sort"),
            page=page, size=size,
            include_inactive=q.get("includeInactive", "false").lower() == "true")
        return _json({
            "metadata": {"status": "OK", "method": request.method, "path": request.url.path,
                         "timestamp": gen.ts(store.clock), "error": {}},
            "pagination": {"currentPage": page, "size": size,
                           "totalPages": total_pages(total, size), "totalElements": total,
                           "sort": sort},
            "data": rows,
        })

    async def handle(request: Request) -> Response:
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        fault = faults.decide()
        if fault and fault.status != 200:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return error(request, fault.status, "9000", HTTPStatus(fault.status).phrase,
                         headers=headers)
        if not authorised(request):
            return error(request, 401, "9001")
        try:
            response = await _dispatch(request)
        except ApiError as exc:
            return error(request, exc.status, exc.code, exc.description, exc.attribute,
                         exc.value)
        except FilterError as exc:
            return error(request, 400, "1000", f"{_DESCRIPTIONS['1000']}: {exc}",
                         exc.attribute, exc.value)
        if fault and fault.malformed:
            response.body = malform(response.body, fault.malformed)
            response.headers["content-length"] = str(len(response.body))
        return response

    async def _dispatch(request: Request) -> Response:
        p = request.path_params
        study_key, resource = p.get("study_key"), p.get("resource")
        if study_key is None:
            return envelope(request, None, "studies")
        store.study(study_key)  # 403 for a study the key cannot see
        if "batch_id" in p:
            return _json(store.get_job(study_key, p["batch_id"]))
        if request.method == "POST":
            if resource != "records":
                return error(request, 405, "9000", "Method not allowed")
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise ApiError(400, "1000", _DESCRIPTIONS["1000"], "body", "") from None
            return _json(store.post_records(study_key, body))
        if resource == "jobs":
            return _json(store.list_jobs(study_key))
        if resource not in LIST_ENDPOINTS:
            return error(request, 404, "9000", "Resource not found")
        return envelope(request, study_key, resource)

    async def not_found(request: Request) -> Response:
        return error(request, 404, "9000", "Resource not found")

    async def health(request: Request) -> Response:
        return _json({"status": "ok", "studies": list(store.studies)})

    async def stats(request: Request) -> Response:
        return _json(store.stats())

    async def set_faults(request: Request) -> Response:
        try:
            faults.update(orjson.loads(await request.body() or b"{}"))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"bad faults body: {exc!r}"}, 400)
        return _json(faults.snapshot())

    async def advance(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
            return _json(store.advance(**body))
        except ApiError:
            return _json({"error": "unknown study"}, 404)
        except (TypeError, orjson.JSONDecodeError) as exc:
            return _json({"error": f"bad advance body: {exc!r}"}, 400)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    routes = [
        Route("/_sim/health", health),
        Route("/_sim/stats", stats),
        Route("/_sim/faults", set_faults, methods=["POST"]),
        Route("/_sim/advance", advance, methods=["POST"]),
        Route(PREFIX, handle),
        Route(PREFIX + "/{study_key}/jobs/{batch_id}", handle),
        Route(PREFIX + "/{study_key}/{resource}", handle, methods=["GET", "POST"]),
        Route("/{path:path}", not_found, methods=methods),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    app.state.faults = faults
    return app


def _int_param(q, name: str, default: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "1000", _DESCRIPTIONS["1000"], name, raw) from None
