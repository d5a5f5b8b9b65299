"""Fixed-window counters in Redis, answered with ``RateLimited`` (429 + Retry-After).

When Redis cannot be reached the limiter lets the request through and logs it: losing rate
limiting for a while is better than refusing every login.
"""

from __future__ import annotations

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pocdojo.core.errors import RateLimited

log = structlog.get_logger(__name__)

_PREFIX = "rl:"

# Count, start the window on the first event, and say how long it has left: one command on
# every request, where a MULTI block of three commands had five to send and parse.
_HIT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return {count, redis.call('TTL', KEYS[1])}
"""


class RateLimiter:
    """Counts events per key within a window of seconds."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._hit_script = redis.register_script(_HIT)

    async def consume(self, key: str, *, limit: int, window: int, what: str) -> None:
        """Count one event and refuse it if it is over ``limit`` in the window.

        Raises:
            RateLimited: more than ``limit`` events in the current window.
        """
        count, ttl = await self._hit(key, window)
        if count > limit:
            raise RateLimited(f"too many {what}; try again later", retry_after=ttl)

    async def take(self, key: str, *, cost: int, limit: int, window: int, what: str) -> None:
        """Count ``cost`` events at once, or none if that would pass ``limit`` in the window.

        Raises:
            RateLimited: the events would exceed ``limit``; they are not counted.
        """
        count, ttl = await self._hit(key, window, cost)
        if count > limit:
            try:
                await self._redis.decrby(_PREFIX + key, cost)
            except (RedisError, OSError) as exc:
                log.warning("rate limiter unavailable", error=str(exc))
            raise RateLimited(f"too many {what}; try again later", retry_after=ttl)

    async def ensure_below(self, key: str, *, limit: int, what: str) -> None:
        """Refuse when ``limit`` events are already counted, without counting one.

        Raises:
            RateLimited: the counter has reached ``limit``.
        """
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(_PREFIX + key)
                pipe.ttl(_PREFIX + key)
                raw, ttl = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable", error=str(exc))
            return
        if raw is not None and int(raw) >= limit:
            raise RateLimited(f"too many {what}; try again later", retry_after=max(int(ttl), 1))

    async def hit(self, key: str, *, window: int) -> int:
        """Count one event; returns the count in the current window (0 if Redis is down)."""
        return (await self._hit(key, window))[0]

    async def reset(self, key: str) -> None:
        """Forget the events counted under ``key``."""
        try:
            await self._redis.delete(_PREFIX + key)
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable", error=str(exc))

    async def _hit(self, key: str, window: int, cost: int = 1) -> tuple[int, int]:
        try:
            count, ttl = await self._hit_script(keys=[_PREFIX + key], args=[cost, window])
        except (RedisError, OSError) as exc:
            log.warning("rate limiter unavailable", error=str(exc))
            return 0, 0
        return int(count), max(int(ttl), 1)
