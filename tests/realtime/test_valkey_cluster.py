"""What the bus's cluster mode will rest on, checked against a real Valkey cluster with the
client the server uses (redis-py's asyncio ``RedisCluster``): a room's hash-tagged keys and
shard channel live in one slot, a script may write them together, sharded pub/sub carries a
doorbell to a reader subscribed on the slot's primary, and after a primary is killed its
replica serves the room's stream, entries included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from tests.valkey_cluster import ValkeyCluster, valkey_cluster

pytestmark = pytest.mark.timeout(90)

STREAM, BELL = "dojo:{room-1}:stream", "dojo:{room-1}:bell"
_APPEND = """
redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])
return redis.call('SPUBLISH', KEYS[2], ARGV[1])
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ValkeyCluster]:
    with valkey_cluster(tmp_path / "cluster") as started:
        yield started


async def test_a_rooms_stream_and_doorbell_work_on_a_cluster_and_survive_a_failover(
    cluster: ValkeyCluster,
) -> None:
    client = RedisCluster.from_url(cluster.url)
    await client.initialize()
    primary = cluster.primary_of(STREAM)
    assert cluster.primary_of(BELL) == primary  # one slot: one script may touch both
    reader = Redis(host="127.0.0.1", port=primary)
    bells = reader.pubsub()
    try:
        await bells.execute_command("SSUBSCRIBE", BELL)
        assert await bells.parse_response(block=True, timeout=2) == [
            b"ssubscribe",
            BELL.encode(),
            1,
        ]
        append = client.register_script(_APPEND)
        delivered = await append(keys=[STREAM, BELL], args=["first"])
        assert delivered == 1
        assert await bells.parse_response(block=True, timeout=2) == [
            b"smessage",
            BELL.encode(),
            b"first",
        ]

        await asyncio.to_thread(cluster.wait_ok)
        await asyncio.to_thread(cluster.kill, primary)
        started = time.monotonic()
        while True:  # the client finds the promoted replica by itself
            try:
                await client.xadd(STREAM, {"d": "after"})
                break
            except (RedisError, OSError):
                assert time.monotonic() - started < 30, "no replica took over"
                await asyncio.sleep(0.2)
        assert cluster.primary_of(STREAM) != primary
        entries = await client.xrange(STREAM)
        assert [fields[b"d"] for _, fields in entries] == [b"first", b"after"]
    finally:
        await reader.aclose()
        await client.aclose()
