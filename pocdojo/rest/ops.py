"""Operational endpoints: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Routes
from pocdojo.core.redisclient import REDIS_DOWN

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


async def _probe(ctx: Ctx) -> dict[str, str]:
    """Ask PostgreSQL and Redis at once; "ok" or the error's type for each, and the gauges set."""

    async def database() -> None:
        async with ctx.app[appkeys.db_pool_key].acquire() as conn:
            await conn.fetchval("SELECT 1")

    async def redis() -> None:
        await ctx.app[appkeys.redis_key].ping()

    async def check(probe: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(probe(), _PROBE_TIMEOUT)
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            return f"error: {type(exc).__name__}"
        return "ok"

    probes: dict[str, Callable[[], Awaitable[None]]] = {"database": database, "redis": redis}
    if ctx.settings.job_redis_url is not None:
        probes["job_redis"] = ctx.app[appkeys.job_queue_key].ping
    names = tuple(probes)
    results = await asyncio.gather(*(check(probe) for probe in probes.values()))
    gauge = ctx.app[appkeys.metrics_key].dependency_up
    for name, result in zip(names, results, strict=True):
        gauge.labels(name).set(1 if result == "ok" else 0)
    return dict(zip(names, results, strict=True))


@routes.op("GET", "/readyz", response=Readiness, auth=False, other_responses=((503, Readiness),))
async def readyz(ctx: Ctx) -> web.Response:
    """Readiness: PostgreSQL and Redis answer within two seconds (503 otherwise, and from
    the moment the node starts stopping: ``draining``)."""
    if ctx.app[appkeys.draining_key].is_set():
        body = Readiness(status="draining", checks={})
        return web.Response(
            body=body.model_dump_json(by_alias=True), status=503, content_type="application/json"
        )
    checks = await _probe(ctx)
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return web.Response(
        body=body.model_dump_json(by_alias=True),
        status=200 if ready else 503,
        content_type="application/json",
    )


@routes.op("GET", "/metrics", auth=False, media_type="text/plain")
async def metrics(ctx: Ctx) -> web.Response:
    """Prometheus metrics in the text exposition format.

    Each scrape also probes PostgreSQL and Redis (``pocdojo_dependency_up``) and counts the
    jobs due on the queue (``pocdojo_job_queue_depth``), so alerts need no other exporter.
    """
    exported = ctx.app[appkeys.metrics_key]
    checks = await _probe(ctx)
    if checks.get("job_redis", checks["redis"]) == "ok":
        try:
            due = await asyncio.wait_for(ctx.app[appkeys.job_queue_key].due(), _PROBE_TIMEOUT)
        except (*REDIS_DOWN, TimeoutError):
            pass  # the gauge keeps its last value; pocdojo_dependency_up tells the rest
        else:
            exported.queue_depth.set(due)
    return web.Response(
        body=generate_latest(exported.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


@routes.op("GET", "/v1/openapi.json", auth=False)
async def openapi(ctx: Ctx) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    return web.json_response(ctx.app[appkeys.openapi_key])
