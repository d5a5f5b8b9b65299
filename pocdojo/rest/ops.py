"""Operational endpoints: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Routes

routes = Routes(tag="ops")

_PROBE_TIMEOUT = 2.0


class Health(ApiModel):
    status: Literal["ok"]


class Readiness(ApiModel):
    status: Literal["ok", "unavailable", "draining"]
    checks: dict[str, str]


@routes.op("GET", "/healthz", response=Health, auth=False)
async def healthz(ctx: Ctx) -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@routes.op("GET", "/readyz", response=Readiness, auth=False, other_responses=((503, Readiness),))
async def readyz(ctx: Ctx) -> web.Response:
    """Readiness: PostgreSQL and Redis answer within two seconds (503 otherwise, and from
    the moment the node starts stopping: ``draining``)."""
    if ctx.app[appkeys.draining_key].is_set():
        body = Readiness(status="draining", checks={})
        return web.Response(
            body=body.model_dump_json(by_alias=True), status=503, content_type="application/json"
        )

    async def database() -> None:
        async with ctx.app[appkeys.db_pool_key].acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def redis() -> None:
        await ctx.app[appkeys.redis_key].ping()

    checks: dict[str, str] = {}
    for name, probe in (("database", database), ("redis", redis)):
        try:
            await asyncio.wait_for(probe(), _PROBE_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return web.Response(
        body=body.model_dump_json(by_alias=True),
        status=200 if ready else 503,
        content_type="application/json",
    )


@routes.op("GET", "/metrics", auth=False, media_type="text/plain")
async def metrics(ctx: Ctx) -> web.Response:
    """Prometheus metrics in the text exposition format."""
    registry = ctx.app[appkeys.metrics_key].registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@routes.op("GET", "/v1/openapi.json", auth=False)
async def openapi(ctx: Ctx) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    return web.json_response(ctx.app[appkeys.openapi_key])
