"""The application factory: the one place where engines, middleware and routes are wired."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

import pocdojo
from pocdojo.core import appkeys
from pocdojo.core.db import open_pool
from pocdojo.core.metrics import http_metrics
from pocdojo.core.ratelimit import RateLimiter
from pocdojo.core.security import AccessTokens, Passwords
from pocdojo.core.settings import Settings
from pocdojo.rest import auth, ops, tenants, users
from pocdojo.rest.api import Routes, openapi_document
from pocdojo.rest.middleware import pipeline

log = structlog.get_logger(__name__)

ROUTES: tuple[Routes, ...] = (ops.routes, auth.routes, tenants.routes, users.routes)


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
    client: Redis = Redis.from_url(
        app[appkeys.settings_key].require_redis_url(),
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        # Serve anyway: rate limits fail open and /readyz reports the outage.
        log.warning("redis unreachable at startup", error=str(exc))
    app[appkeys.redis_key] = client
    app[appkeys.limiter_key] = RateLimiter(client)
    yield
    await client.aclose()


def create_app(settings: Settings) -> web.Application:
    """Build the application; engines are connected on startup, not here.

    Args:
        settings: resolved settings (database and Redis URLs and the JWT secret are set).
    """
    settings.require_jwt_secret()
    app = web.Application(middlewares=[pipeline], client_max_size=settings.max_body_bytes)
    app[appkeys.settings_key] = settings
    app[appkeys.metrics_key] = http_metrics()
    app[appkeys.passwords_key] = Passwords(settings)
    app[appkeys.tokens_key] = AccessTokens(settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_redis)
    for group in ROUTES:
        group.install(app)
    operations = [op for group in ROUTES for op in group.operations]
    app[appkeys.openapi_key] = openapi_document(operations, version=pocdojo.__version__)
    return app
