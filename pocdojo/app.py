"""The application factory: the one place where engines, middleware and routes are wired."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import structlog
from aiohttp import web
from arq.connections import ArqRedis
from redis.asyncio.cluster import RedisCluster

import pocdojo
from pocdojo.core import appkeys
from pocdojo.core.api import Routes, openapi_document
from pocdojo.core.cache import PocCache
from pocdojo.core.db import open_pool
from pocdojo.core.gctune import GcTuner
from pocdojo.core.jobqueue import JobQueue
from pocdojo.core.metrics import http_metrics
from pocdojo.core.middleware import pipeline
from pocdojo.core.objectstore import open_store
from pocdojo.core.periodic import Periodic
from pocdojo.core.ratelimit import RateLimiter
from pocdojo.core.redisclient import REDIS_DOWN, AnyRedis
from pocdojo.core.search import opensearch, outbox
from pocdojo.core.search.postgres import PostgresSearch
from pocdojo.core.security import AccessTokens, ParticipantTokens, Passwords
from pocdojo.core.settings import Settings
from pocdojo.jobs.worker import RunningWorker
from pocdojo.realtime import sockets
from pocdojo.realtime.bus import Bus
from pocdojo.realtime.recorder import RecorderMetrics, Recorders
from pocdojo.realtime.rooms import RoomMetrics, Rooms, RoomSettings
from pocdojo.rest import (
    auth,
    dojos,
    favorites,
    files,
    notifications,
    ops,
    pocs,
    reports,
    tenants,
    users,
    videos,
)
from pocdojo.web import pages

log = structlog.get_logger(__name__)

ROUTES: tuple[Routes, ...] = (
    ops.routes,
    auth.routes,
    tenants.routes,
    users.routes,
    pocs.routes,
    favorites.routes,
    dojos.routes,
    sockets.routes,
    reports.routes,
    videos.routes,
    notifications.routes,
    files.routes,
)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.settings_key]
    app_url = settings.database_app_url
    app[appkeys.db_pool_key] = await open_pool(
        settings.require_database_url(),
        app_url.get_secret_value() if app_url else None,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
    )
    yield
    await app[appkeys.db_pool_key].close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.settings_key]
    options: dict[str, Any] = {
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "health_check_interval": 30,
    }
    client: AnyRedis
    if settings.redis_cluster:
        client = RedisCluster.from_url(settings.require_redis_url(), **options)
    else:
        client = ArqRedis.from_url(settings.require_redis_url(), **options)
    try:
        await client.ping()
    except REDIS_DOWN as exc:
        # Serve anyway: rate limits fail open and /readyz reports the outage.
        log.warning("redis unreachable at startup", error=str(exc))
    app[appkeys.redis_key] = client
    app[appkeys.limiter_key] = RateLimiter(client)
    app[appkeys.poc_cache_key] = PocCache(client, ttl=settings.poc_cache_ttl)
    if isinstance(client, ArqRedis) and settings.job_redis_url is None:
        jobs = client
    else:  # the queue on a Redis of its own (always beside a cluster)
        jobs = ArqRedis.from_url(settings.require_job_redis_url(), **options)
    app[appkeys.job_queue_key] = JobQueue(jobs, settings.job_queue)
    yield
    await client.aclose()
    if jobs is not client:
        await jobs.aclose()


async def _object_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.settings_key]
    store = open_store(settings)
    app[appkeys.object_store_key] = store
    yield
    await store.close()


async def _gc_tuning(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.settings_key]
    if not settings.gc_freeze_every:
        yield
        return
    tuner = GcTuner(settings.gc_freeze_every, settings.gc_full_every)
    tuner.start()
    yield
    await tuner.stop()


async def _worker(app: web.Application) -> AsyncIterator[None]:
    """The in-process job worker (``pocdojo serve`` without ``--no-worker``)."""
    settings = app[appkeys.settings_key]
    worker = RunningWorker(settings, registry=app[appkeys.metrics_key].registry)
    worker.start()

    async def stop_picking_when_draining() -> None:
        await app[appkeys.draining_key].wait()
        worker.stop_picking()

    watcher = asyncio.create_task(stop_picking_when_draining())
    yield
    watcher.cancel()
    # Running jobs may finish within half the drain's time; the rest is the rooms'.
    await worker.finish(settings.drain_timeout / 2)


async def _view_flusher(app: web.Application) -> AsyncIterator[None]:
    """Write buffered POC views to the database every few seconds, and once at shutdown."""
    cache, pool = app[appkeys.poc_cache_key], app[appkeys.db_pool_key]

    async def flush() -> None:
        await cache.flush_views(pool)

    flusher = Periodic("view-flusher", app[appkeys.settings_key].view_flush_interval, flush)
    flusher.start()
    yield
    await flusher.stop()
    try:
        await flush()
    except Exception:
        log.exception("final view flush failed")


async def _search(app: web.Application) -> AsyncIterator[None]:
    """PostgreSQL search by default; with OPENSEARCH_URL, OpenSearch fed by the outbox."""
    url = app[appkeys.settings_key].opensearch_url
    if not url:
        app[appkeys.search_key] = PostgresSearch()
        yield
        return
    client = opensearch.connect(url)
    engine = opensearch.OpenSearchSearch(client)
    app[appkeys.search_key] = engine
    try:
        await opensearch.ensure_index(client)
    except Exception as exc:  # the drainer keeps retrying; searches fail until it is up
        log.warning("opensearch unreachable at startup", error=str(exc))
    pool = app[appkeys.db_pool_key]

    async def drain() -> bool:
        return await outbox.drain_once(pool, engine) > 0  # a full batch: go again at once

    drainer = Periodic("search-outbox", 1.0, drain)
    drainer.start()
    yield
    await drainer.stop()
    await client.close()


async def _realtime(app: web.Application) -> AsyncIterator[None]:
    """The node's bus to other nodes and the rooms it holds."""
    settings = app[appkeys.settings_key]
    bus = Bus(app[appkeys.redis_key])
    rooms = Rooms(
        app[appkeys.db_pool_key],
        app[appkeys.redis_key],
        bus,
        RoomSettings(
            persist_interval=settings.dojo_persist_interval,
            compact_every=settings.dojo_compact_every,
            history_interval=settings.dojo_history_interval,
            idle_unload=settings.dojo_idle_unload,
            max_document_bytes=settings.ws_max_document_bytes,
        ),
        RoomMetrics(app[appkeys.metrics_key].registry),
        Recorders(
            app[appkeys.db_pool_key],
            settings,
            lambda: app.get(appkeys.object_store_key),
            RecorderMetrics(app[appkeys.metrics_key].registry),
        ),
    )
    app[sockets.rooms_key] = rooms
    app[appkeys.live_rooms_key] = rooms
    await bus.start()
    await rooms.start()
    yield
    await rooms.stop()
    await bus.stop()


async def _recovered_recordings(app: web.Application) -> AsyncIterator[None]:
    """Upload, in the background, the recording parts a killed run of this node left."""
    rooms, queue = app[sockets.rooms_key], app[appkeys.job_queue_key]

    async def requeue(tenant_id: UUID, recording_id: UUID) -> None:
        await queue.enqueue("recording", tenant_id, recording_id, plan="standard")

    task = None
    if rooms.recorders is not None:
        task = asyncio.create_task(rooms.recorders.recover(requeue), name="recording-recovery")
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _going_away(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for open connections: store every room, then close
    every dojo socket with 1001, so clients reconnect (to another node) at once; rooms are
    stored again and unloaded at cleanup."""
    app[appkeys.draining_key].set()
    rooms = app.get(sockets.rooms_key)
    if rooms is not None:
        await rooms.flush()
        await rooms.close_sockets()


def create_app(settings: Settings) -> web.Application:
    """Build the application; engines are connected on startup, not here.

    Args:
        settings: resolved settings (database and Redis URLs and the JWT secret are set).
    """
    settings.require_jwt_secret()
    app = web.Application(middlewares=[pipeline], client_max_size=settings.max_body_bytes)
    app[appkeys.settings_key] = settings
    app[appkeys.draining_key] = asyncio.Event()
    app[appkeys.metrics_key] = http_metrics()
    app[appkeys.passwords_key] = Passwords(settings)
    app[appkeys.tokens_key] = AccessTokens(settings)
    app[appkeys.participant_tokens_key] = ParticipantTokens(settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_view_flusher)
    app.cleanup_ctx.append(_search)
    app.cleanup_ctx.append(_realtime)
    app.cleanup_ctx.append(_object_store)
    app.cleanup_ctx.append(_recovered_recordings)
    app.cleanup_ctx.append(_gc_tuning)
    if settings.worker:
        app.cleanup_ctx.append(_worker)
    app.on_shutdown.append(_going_away)
    for group in ROUTES:
        group.install(app)
    pages.install(app)  # the browser app: its page and assets, outside the API document
    operations = [op for group in ROUTES for op in group.operations]
    app[appkeys.openapi_key] = openapi_document(operations, version=pocdojo.__version__)
    return app
