"""The server's Redis: one Redis (or Valkey) server, or a Redis Cluster (``REDIS_CLUSTER``).

On a cluster a command or script may touch only keys of one hash slot, so whatever is touched
together is named with a hash tag (``{…}``) on a cluster. On one Redis the names stay as they
always were: nodes of two versions share one Redis during a rolling upgrade, and must agree on
every key.
"""

from __future__ import annotations

from typing import Any, TypeAlias, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError

AnyRedis: TypeAlias = Redis | RedisCluster

# What a Redis that cannot answer raises: a cluster with no reachable node, or no primary for a
# slot, raises ``RedisClusterException``, which is no ``RedisError``.
REDIS_DOWN = (RedisError, RedisClusterException, OSError)


def is_cluster(redis: AnyRedis) -> bool:
    return isinstance(redis, RedisCluster)


def slot_tag(redis: AnyRedis, name: str) -> str:
    """``name`` as the hash tag of keys that must share a slot on a cluster; unchanged on one
    Redis, where keys need no slot."""
    return f"{{{name}}}" if is_cluster(redis) else name


def register_script(redis: AnyRedis, source: str) -> AsyncScript:
    """``redis.register_script(source)``: a script called by its SHA, loaded when missing (on
    a cluster, on the shard of its keys). redis-py types it for one Redis only."""
    script: AsyncScript = cast(Any, redis).register_script(source)
    return script
