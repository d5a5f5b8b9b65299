"""The bus merges a burst of one room's updates into one stream entry, losing nothing, and
delivers other nodes' entries even when their doorbell is lost."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pycrdt import Doc, Text
from redis.asyncio import Redis

from pocdojo.realtime.bus import (
    DOORBELL,
    STREAM_IDLE_TTL,
    STREAM_MAX_AGE,
    STREAM_MAX_BYTES,
    STREAM_MAXLEN,
    SWEEP_INTERVAL,
    Bus,
    _coalesce,
    entries_kept,
    stream_key,
)
from tests.conftest import Engines
from tests.helpers import wait_until


def _edits(count: int) -> tuple[list[bytes], str]:
    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(count):
        text += f"line {i}\n"
    del text[0:5]
    return updates, str(text)


def test_runs_of_one_rooms_updates_become_one_entry_that_replays_the_same() -> None:
    updates, final = _edits(20)
    batch = [("r1", b"u", u, f"o:{i + 1}:{i + 1}".encode()) for i, u in enumerate(updates[:10])]
    batch.append(("r1", b"a", b"awareness", b""))
    batch += [("r1", b"u", u, f"o:{i + 11}:{i + 11}".encode()) for i, u in enumerate(updates[10:])]
    batch.append(("r2", b"e", b"{}", b""))
    merged = _coalesce(batch)
    assert [(room, kind, tag) for room, kind, _, tag in merged] == [
        ("r1", b"u", b"o:1:10"),  # a merged run names every number it carries
        ("r1", b"a", b""),
        ("r1", b"u", f"o:11:{len(updates)}".encode()),
        ("r2", b"e", b""),
    ]
    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    for _, kind, data, _ in merged:
        if kind == b"u":
            doc.apply_update(data)
    assert str(text) == final


def test_updates_of_different_rooms_are_not_mixed() -> None:
    one, _ = _edits(3)
    two, _ = _edits(2)
    merged = _coalesce(
        [("a", b"u", one[0], b""), ("b", b"u", two[0], b""), ("a", b"u", one[1], b"")]
    )
    assert [room for room, _, _, _ in merged] == ["a", "b", "a"]
    assert merged[1][2] == two[0]


async def test_entries_arrive_without_a_doorbell(engines: Engines) -> None:
    """The doorbell is a hint: an entry whose bell was lost still arrives, by the sweep."""
    redis: Redis = Redis.from_url(engines.redis_url)
    bus = Bus(redis)
    got: list[tuple[bytes, bytes]] = []

    async def on_message(kind: bytes, data: bytes, tag: bytes) -> None:
        got.append((kind, data))

    async def nothing() -> None:
        return None

    room = f"bell-{uuid.uuid4().hex}"
    await bus.start()
    try:
        bus.subscribe(room, await bus.position(room), on_message, nothing, nothing)
        # Another node's entry written without ringing (its bell lost): the sweep finds it.
        await redis.xadd(stream_key(room), {"n": "other", "k": b"e", "d": b"silent"})
        # Our own entries are never delivered back to us.
        await redis.xadd(stream_key(room), {"n": bus.node_id, "k": b"e", "d": b"mine"})
        await wait_until(lambda: len(got) >= 1, within=SWEEP_INTERVAL * 5)
        # And an announced one.
        await redis.xadd(stream_key(room), {"n": "other", "k": b"e", "d": b"rung"})
        await redis.publish(DOORBELL, f"other|{room}")
        await wait_until(lambda: len(got) >= 2, within=SWEEP_INTERVAL * 5)
        assert got == [(b"e", b"silent"), (b"e", b"rung")]
    finally:
        await bus.stop()
        await redis.aclose()


async def test_streams_are_trimmed_by_age_and_expire_when_idle(engines: Engines) -> None:
    redis: Redis = Redis.from_url(engines.redis_url)
    bus = Bus(redis)
    room = f"aged-{uuid.uuid4().hex}"
    key = stream_key(room)
    # An entry from long ago, as a room that was busy an hour back left it.
    old_ms = int((time.time() - STREAM_MAX_AGE - 60) * 1000)
    await redis.xadd(key, {"n": "other", "k": b"e", "d": b"old"}, id=f"{old_ms}-0")
    await bus.start()
    try:
        bus.subscribe(room, await bus.position(room), _ignore, _nothing, _nothing)
        bus.publish(room, b"e", b"new")
        await wait_until(lambda: bus._outbox.empty())

        async def trimmed() -> bool:
            return [f[b"d"] for _, f in await redis.xrange(key)] == [b"new"]

        await wait_until(trimmed)
        assert 0 < await redis.ttl(key) <= STREAM_IDLE_TTL
        assert await bus.stream_memory() > 0
    finally:
        await bus.stop()
        await redis.delete(key)
        await redis.aclose()


async def test_a_room_sending_large_updates_holds_megabytes_not_gigabytes(
    engines: Engines,
) -> None:
    """Streams are trimmed by bytes too: an entry of n bytes keeps its stream to about
    ``STREAM_MAX_BYTES / n`` entries, trimmed exactly, so 300 entries of 1 MiB (the largest
    message a socket may send) leave well under twice the budget in Redis."""
    redis: Redis = Redis.from_url(engines.redis_url)
    bus = Bus(redis)
    room = f"large-{uuid.uuid4().hex}"
    key = stream_key(room)
    await bus.start()
    try:
        bus.subscribe(room, await bus.position(room), _ignore, _nothing, _nothing)
        big = 1024 * 1024
        for i in range(300):
            bus.publish(room, b"e", bytes([i % 256]) * big)  # events are never merged
        await wait_until(lambda: bus._outbox.empty(), within=60)

        async def written() -> bool:
            last = await redis.xrevrange(key, count=1)
            return bool(last) and last[0][1][b"d"][:1] == bytes([299 % 256])

        await wait_until(written, within=30)
        assert await redis.xlen(key) == entries_kept(big) == STREAM_MAX_BYTES // big
        memory = await redis.memory_usage(key)
        assert memory is not None
        assert memory < 2 * STREAM_MAX_BYTES
        # Small entries after them do not trim what a slow reader may still need.
        for _ in range(10):
            bus.publish(room, b"e", b"small")
        await wait_until(lambda: bus._outbox.empty())
        await wait_until(lambda: _length_is(redis, key, entries_kept(big) + 10))
        assert entries_kept(5) == STREAM_MAXLEN
    finally:
        await bus.stop()
        await redis.delete(key)
        await redis.aclose()


async def _length_is(redis: Redis, key: str, length: int) -> bool:
    return bool(await redis.xlen(key) == length)


async def _ignore(kind: bytes, data: bytes, tag: bytes) -> None:
    return None


async def _nothing() -> None:
    return None
