"""Hot POC reads: the POC cached in Redis, and views counted in Redis and flushed in batches.

A POC read then costs one Redis round trip instead of a row update. Every failure of Redis
degrades to the database: the cache answers "miss" and the view is counted with an UPDATE.
Views buffered in Redis since the last flush (at most ``flush_interval`` seconds' worth) are
the only thing a Redis crash can lose.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db import tenant_tx

log = structlog.get_logger(__name__)

_PENDING = "pocviews:pending"


def _key(tenant_id: UUID, poc_id: UUID) -> str:
    return f"poc:{tenant_id}:{poc_id}"


def _encode(poc: pocs_db.Poc) -> str:
    return json.dumps(asdict(poc), default=str)


def _decode(raw: bytes) -> pocs_db.Poc:
    data: dict[str, Any] = json.loads(raw)
    for name in ("id", "tenant_id", "user_id"):
        data[name] = UUID(data[name])
    for name in ("created_at", "updated_at"):
        data[name] = datetime.fromisoformat(data[name])
    return pocs_db.Poc(**data)


class PocCache:
    """The POC row as last read from the database, per tenant, with a TTL."""

    def __init__(self, redis: Redis, ttl: int = 300) -> None:
        self._redis = redis
        self._ttl = ttl

    async def get(self, tenant_id: UUID, poc_id: UUID) -> pocs_db.Poc | None:
        """The cached POC, or None on a miss or when Redis is down."""
        try:
            raw = await self._redis.get(_key(tenant_id, poc_id))
        except (RedisError, OSError) as exc:
            log.warning("poc cache unavailable", error=str(exc))
            return None
        return _decode(raw) if raw else None

    async def put(self, poc: pocs_db.Poc) -> None:
        """Cache a POC as read from the database."""
        try:
            await self._redis.set(_key(poc.tenant_id, poc.id), _encode(poc), ex=self._ttl)
        except (RedisError, OSError) as exc:
            log.warning("poc cache unavailable", error=str(exc))

    async def invalidate(self, tenant_id: UUID, poc_id: UUID) -> None:
        """Forget a POC after it changed. A failure is logged; the TTL bounds staleness."""
        try:
            await self._redis.delete(_key(tenant_id, poc_id))
        except (RedisError, OSError) as exc:
            log.warning("poc cache invalidation failed", error=str(exc))

    async def count_view(self, tenant_id: UUID, poc_id: UUID) -> int | None:
        """Buffer one view; returns the views buffered for this POC, or None if Redis is down."""
        try:
            pending = await cast(
                Awaitable[int], self._redis.hincrby(_PENDING, f"{tenant_id}:{poc_id}", 1)
            )
        except (RedisError, OSError) as exc:
            log.warning("view buffer unavailable", error=str(exc))
            return None
        return pending

    async def flush_views(self, pool: Any) -> int:
        """Move buffered views into the database; returns how many views were written.

        The buffer is renamed atomically first, so views counted meanwhile go to a new buffer.
        If the database write fails the counts are put back.
        """
        batch = f"pocviews:flushing:{uuid.uuid4().hex}"
        try:
            await self._redis.rename(_PENDING, batch)
        except RedisError as exc:
            if "no such key" in str(exc).lower():
                return 0
            log.warning("view flush skipped", error=str(exc))
            return 0
        except OSError as exc:
            log.warning("view flush skipped", error=str(exc))
            return 0
        raw = await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(batch))
        by_tenant: dict[UUID, dict[UUID, int]] = {}
        for field, count in raw.items():
            tenant, poc = field.decode().split(":")
            by_tenant.setdefault(UUID(tenant), {})[UUID(poc)] = int(count)
        written = 0
        try:
            for tenant_id, counts in by_tenant.items():
                async with tenant_tx(pool, tenant_id) as conn:
                    await pocs_db.add_views(conn, counts)
                written += sum(counts.values())
                await self._redis.delete(*(_key(tenant_id, p) for p in counts))
                fields = [f"{tenant_id}:{poc_id}" for poc_id in counts]
                await cast(Awaitable[int], self._redis.hdel(batch, *fields))
        finally:
            # Whatever was not written goes back into the live buffer.
            leftover = await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(batch))
            for field, count in leftover.items():
                await cast(
                    Awaitable[int], self._redis.hincrby(_PENDING, field.decode(), int(count))
                )
            await self._redis.delete(batch)
        return written
