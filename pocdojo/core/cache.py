"""Hot POC reads: the POC cached in Redis, and views counted in Redis and flushed in batches.

A POC read then costs one Redis round trip instead of a row update. Every failure of Redis
degrades to the database: the cache answers "miss" and the view is counted with an UPDATE.
Views buffered in Redis since the last flush (at most ``flush_interval`` seconds' worth) are
the only thing a Redis crash can lose.

On a Redis Cluster a POC's entry and its generation share a hash slot, and so do the view
buffer and the batches it is renamed to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable
from dataclasses import fields
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import structlog
from redis.exceptions import RedisClusterException, RedisError

from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.redisclient import REDIS_DOWN, AnyRedis, is_cluster, register_script, slot_tag

log = structlog.get_logger(__name__)

_FIELDS = tuple(f.name for f in fields(pocs_db.Poc))


def _encode(poc: pocs_db.Poc) -> str:
    # Field by field: dataclasses.asdict deep-copies every value (half of a cache fill's
    # time, under a profiler).
    return json.dumps({name: getattr(poc, name) for name in _FIELDS}, default=str)


def _decode(raw: bytes) -> pocs_db.Poc:
    data: dict[str, Any] = json.loads(raw)
    for name in ("id", "tenant_id", "user_id"):
        data[name] = UUID(data[name])
    for name in ("created_at", "updated_at"):
        data[name] = datetime.fromisoformat(data[name])
    return pocs_db.Poc(**data)


# Fill the cache only if no invalidation happened since the row was read: a reader that read
# the database before a change committed must not put the old row back after it.
_PUT_IF_CURRENT = """
local generation = redis.call('GET', KEYS[2]) or ''
if generation == ARGV[2] then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
    return 1
end
return 0
"""
_GENERATION_TTL = 3600


class PocCache:
    """The POC row as last read from the database, per tenant, with a TTL."""

    def __init__(self, redis: AnyRedis, ttl: int = 300) -> None:
        self._redis = redis
        self._ttl = ttl
        self._put_if_current = register_script(redis, _PUT_IF_CURRENT)
        self._views = slot_tag(redis, "pocviews")
        self._pending = f"{self._views}:pending"
        # One MULTI per invalidation on one Redis; a cluster has no MULTI across slots, and the
        # generation is raised before the entry goes, so no reader puts the old row back.
        self._atomic = not is_cluster(redis)

    def _key(self, tenant_id: UUID, poc_id: UUID) -> str:
        return f"poc:{slot_tag(self._redis, f'{tenant_id}:{poc_id}')}"

    async def get(self, tenant_id: UUID, poc_id: UUID) -> tuple[pocs_db.Poc | None, str | None]:
        """The cached POC (None on a miss or when Redis is down) and the generation to pass
        to ``put`` after reading the database (None when Redis is down)."""
        key = self._key(tenant_id, poc_id)
        try:
            raw, generation = await self._redis.mget(key, f"{key}:gen")
        except REDIS_DOWN as exc:
            log.warning("poc cache unavailable", error=str(exc))
            return None, None
        token = generation.decode() if generation else ""
        return (_decode(raw) if raw else None), token

    async def put(self, poc: pocs_db.Poc, generation: str | None) -> None:
        """Cache a POC read from the database, unless it changed since ``get``."""
        if generation is None:
            return
        key = self._key(poc.tenant_id, poc.id)
        try:
            await self._put_if_current(
                keys=[key, f"{key}:gen"], args=[_encode(poc), generation, self._ttl]
            )
        except REDIS_DOWN as exc:
            log.warning("poc cache unavailable", error=str(exc))

    async def invalidate(self, tenant_id: UUID, *poc_ids: UUID) -> None:
        """Forget POCs after they changed, in one round trip. A failure is logged; the TTL
        bounds staleness."""
        try:
            async with self._redis.pipeline(transaction=self._atomic) as pipe:
                for poc_id in poc_ids:
                    key = self._key(tenant_id, poc_id)
                    pipe.incr(f"{key}:gen")
                    pipe.expire(f"{key}:gen", _GENERATION_TTL)
                    pipe.delete(key)
                await pipe.execute()
        except REDIS_DOWN as exc:
            log.warning("poc cache invalidation failed", error=str(exc))

    async def count_view(self, tenant_id: UUID, poc_id: UUID) -> int | None:
        """Buffer one view; returns the views buffered for this POC, or None if Redis is down."""
        try:
            pending = await cast(
                Awaitable[int], self._redis.hincrby(self._pending, f"{tenant_id}:{poc_id}", 1)
            )
        except REDIS_DOWN as exc:
            log.warning("view buffer unavailable", error=str(exc))
            return None
        return pending

    async def flush_views(self, pool: Any) -> int:
        """Move buffered views into the database; returns how many views were written.

        The buffer is renamed atomically first, so views counted meanwhile go to a new buffer.
        If the database write fails the counts are put back.
        """
        batch = f"{self._views}:flushing:{uuid.uuid4().hex}"
        try:
            await self._redis.rename(self._pending, batch)
        except RedisError as exc:
            if "no such key" in str(exc).lower():
                return 0
            log.warning("view flush skipped", error=str(exc))
            return 0
        except (RedisClusterException, OSError) as exc:
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
                    await pocs_db.add_views(conn, tenant_id, counts)
                written += sum(counts.values())
                await self.invalidate(tenant_id, *counts)
                written_fields = [f"{tenant_id}:{poc_id}" for poc_id in counts]
                await cast(Awaitable[int], self._redis.hdel(batch, *written_fields))
        finally:
            # Whatever was not written goes back into the live buffer.
            leftover = await cast(Awaitable[dict[bytes, bytes]], self._redis.hgetall(batch))
            for field, count in leftover.items():
                await cast(
                    Awaitable[int], self._redis.hincrby(self._pending, field.decode(), int(count))
                )
            await self._redis.delete(batch)
        return written
