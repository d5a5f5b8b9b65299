"""Fixed-window counters in Redis, answered with ``RateLimited`` (429 + Retry-After).

When Redis cannot be reached the limiter lets the request through and logs it: losing rate
limiting for a while is better than refusing every login.

On a Redis Cluster the counters of one reservation may live on different shards, so no script
can take them all at once: each is checked and counted atomically, one after another, and a
full one gives back those already taken. Attempts sent at once still cannot all pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import structlog

from pocdojo.core.errors import RateLimited
from pocdojo.core.redisclient import REDIS_DOWN, AnyRedis, is_cluster, register_script

log = structlog.get_logger(__name__)

_PREFIX = "rl:"

# Count, start the window on the first event, and say how long it has left: one command on
# every request, where a MULTI block of three commands had five to send and parse.
_HIT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
return {count, redis.call('TTL', KEYS[1])}
"""

# Check every counter and count on all or none in one script, so attempts sent at once cannot
# all pass a check made before any of them is counted. Returns the TTL of a full counter, or 0.
_RESERVE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    return math.max(redis.call('TTL', key), 1)
  end
end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[1], 'NX')
end
return 0
"""

# Give back one event under the first ARGV[1] keys and forget the others. DECR keeps the
# window's expiry; the floor at zero keeps a counter that expired meanwhile from going negative.
_RELEASE = """
for i, key in ipairs(KEYS) do
  if i > tonumber(ARGV[1]) then
    redis.call('DEL', key)
  elseif tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
return 0
"""


class RateLimiter:
    """Counts events per key within a window of seconds."""

    def __init__(self, redis: AnyRedis) -> None:
        self._redis = redis
        self._one_slot = not is_cluster(redis)  # may a script touch any keys together?
        self._hit_script = register_script(redis, _HIT)
        self._reserve_script = register_script(redis, _RESERVE)
        self._release_script = register_script(redis, _RELEASE)

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
            except REDIS_DOWN as exc:
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
        except REDIS_DOWN as exc:
            log.warning("rate limiter unavailable", error=str(exc))
            return
        if raw is not None and int(raw) >= limit:
            raise RateLimited(f"too many {what}; try again later", retry_after=max(int(ttl), 1))

    async def reserve(self, limits: Mapping[str, int], *, window: int, what: str) -> None:
        """Count one event under every key, or none if any key has reached its limit.

        Reserve before doing what is limited, and ``release`` if it turns out not to count:
        checking first and counting afterwards lets every attempt in flight pass the check.

        Args:
            limits: each key and the number of events it allows in the window.
            window: seconds a key's window lasts from its first event.
            what: the events' name, for the refusal's message.

        Raises:
            RateLimited: some key has reached its limit; nothing is counted.
        """
        keys = [_PREFIX + key for key in limits]
        try:
            if self._one_slot:
                full = await self._reserve_script(keys=keys, args=[window, *limits.values()])
            else:
                full = await self._reserve_in_turn(keys, window, list(limits.values()))
        except REDIS_DOWN as exc:
            log.warning("rate limiter unavailable", error=str(exc))
            return
        if int(full):
            raise RateLimited(f"too many {what}; try again later", retry_after=int(full))

    async def release(self, *keys: str, forget: Sequence[str] = ()) -> None:
        """Give back one reserved event under each of ``keys``, and forget all under ``forget``.

        One round trip for both, as settling a reservation is on the path of every success.
        """
        try:
            if self._one_slot:
                await self._release_script(
                    keys=[_PREFIX + key for key in (*keys, *forget)], args=[len(keys)]
                )
            else:
                await self._release_each(
                    [_PREFIX + key for key in keys], [_PREFIX + key for key in forget]
                )
        except REDIS_DOWN as exc:
            log.warning("rate limiter unavailable", error=str(exc))

    async def _reserve_in_turn(self, keys: list[str], window: int, limits: list[int]) -> int:
        """``_RESERVE`` a key at a time (keys on several shards); the TTL of a full key, or 0."""
        taken: list[str] = []
        for key, limit in zip(keys, limits, strict=True):
            full = int(await self._reserve_script(keys=[key], args=[window, limit]))
            if full:
                await self._release_each(taken, [])
                return full
            taken.append(key)
        return 0

    async def _release_each(self, keys: list[str], forget: list[str]) -> None:
        """``_RELEASE`` a key at a time, all at once (keys on several shards)."""
        await asyncio.gather(
            *(self._release_script(keys=[key], args=[1]) for key in keys),
            *(self._release_script(keys=[key], args=[0]) for key in forget),
        )

    async def reset(self, key: str) -> None:
        """Forget the events counted under ``key``."""
        try:
            await self._redis.delete(_PREFIX + key)
        except REDIS_DOWN as exc:
            log.warning("rate limiter unavailable", error=str(exc))

    async def _hit(self, key: str, window: int, cost: int = 1) -> tuple[int, int]:
        try:
            count, ttl = await self._hit_script(keys=[_PREFIX + key], args=[cost, window])
        except REDIS_DOWN as exc:
            log.warning("rate limiter unavailable", error=str(exc))
            return 0, 0
        return int(count), max(int(ttl), 1)
