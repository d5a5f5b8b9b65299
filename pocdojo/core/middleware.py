"""The request pipeline: request id, JSON access log, metrics, body limit, error mapping."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from pocdojo.core import appkeys
from pocdojo.core.api import request_id_key
from pocdojo.core.errors import AppError, PayloadTooLarge, RateLimited

log = structlog.get_logger("pocdojo.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The one JSON error shape."""
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.Response(
        text=json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: every request leaves with a request id, a log line and metrics."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    request[request_id_key] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    response = await _guarded(request, handler)
    elapsed = time.perf_counter() - started
    response.headers["X-Request-ID"] = request_id
    route = _route_label(request)
    metrics = request.app[appkeys.metrics_key]
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    metrics.latency.labels(request.method, route).observe(elapsed)
    log.info(
        "request",
        method=request.method,
        path=request.path,
        route=route,
        status=response.status,
        duration_ms=round(elapsed * 1000, 2),
        remote=request.remote,
    )
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        limit = request.app[appkeys.settings_key].max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes")
        return await handler(request)
    except RateLimited as exc:
        return error_response(
            exc.status, exc.code, exc.message, exc.details, {"Retry-After": str(exc.retry_after)}
        )
    except AppError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, exc.reason, None, headers)
    except (
        asyncpg.CharacterNotInRepertoireError,
        asyncpg.UntranslatableCharacterError,
    ):
        # Text PostgreSQL cannot store (a NUL character) that no field rule caught.
        return error_response(
            422, "validation_failed", "the input holds characters that cannot be stored (NUL)"
        )
    except Exception:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an internal error occurred")
