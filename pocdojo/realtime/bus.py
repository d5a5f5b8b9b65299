"""Cross-node fan-out on Redis streams, one stream per room.

Plain pub/sub drops whatever is published while a subscriber is reconnecting. A stream keeps
the last entries, so a node reads on from the last id it saw and misses nothing; a node that
was cut off long enough for the stream to be trimmed past that id is told (``on_gap``) and
reloads the room from PostgreSQL. Entries a node published itself are skipped when read back.

One reader task per node serves every room it holds with a single ``XREAD`` over all their
streams, and one publisher task pipelines what the rooms publish, so neither the number of
rooms nor the update rate multiplies Redis connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pycrdt import merge_updates
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

STREAM_MAXLEN = 10_000
_BLOCK_MS = 250
_BATCH = 500

Handler = Callable[[bytes, bytes], Awaitable[None]]


def stream_key(room: str) -> str:
    return f"dojo:{room}:stream"


@dataclass
class _Subscription:
    last_id: str
    on_message: Handler
    on_gap: Callable[[], Awaitable[None]]
    on_reconnect: Callable[[], Awaitable[None]]
    missed_publish: bool = False


@dataclass
class Bus:
    """The node's connection to every room stream it holds."""

    redis: Redis
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _subs: dict[str, _Subscription] = field(default_factory=dict)
    _outbox: asyncio.Queue[tuple[str, bytes, bytes]] = field(default_factory=asyncio.Queue)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    healthy: bool = True
    _stopping: bool = False

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="bus-reader"),
            asyncio.create_task(self._publish_loop(), name="bus-publisher"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # redis-py can swallow a cancellation inside a blocking XREAD; the loop's stop flag
        # ends it then, and the wait is bounded in any case.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(2 * _BLOCK_MS / 1000 + 1):
                await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_outbox()

    async def position(self, room: str) -> str:
        """The id to read a room's stream from, taken before its state is loaded from the
        database, so nothing published after the load is missed."""
        try:
            entries = await self.redis.xrevrange(stream_key(room), count=1)
        except (RedisError, OSError) as exc:
            log.warning("bus unavailable; will read the stream from its start", error=str(exc))
            return "0-0"
        return entries[0][0].decode() if entries else "0-0"

    def subscribe(
        self,
        room: str,
        last_id: str,
        on_message: Handler,
        on_gap: Callable[[], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        """Deliver every entry after ``last_id`` of the room's stream that others published."""
        self._subs[room] = _Subscription(last_id, on_message, on_gap, on_reconnect)

    def unsubscribe(self, room: str) -> None:
        self._subs.pop(room, None)

    def publish(self, room: str, kind: bytes, data: bytes) -> None:
        """Queue an entry for the room's stream (sent by the publisher task, in order)."""
        self._outbox.put_nowait((room, kind, data))

    async def _publish_loop(self) -> None:
        while True:
            first = await self._outbox.get()
            batch = [first]
            while not self._outbox.empty() and len(batch) < _BATCH:
                batch.append(self._outbox.get_nowait())
            await self._send(batch)

    async def _flush_outbox(self) -> None:
        batch = []
        while not self._outbox.empty():
            batch.append(self._outbox.get_nowait())
        if batch:
            await self._send(batch)

    async def _send(self, batch: list[tuple[str, bytes, bytes]]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for room, kind, data in _coalesce(batch):
                    pipe.xadd(
                        stream_key(room),
                        {"n": self.node_id, "k": kind, "d": data},
                        maxlen=STREAM_MAXLEN,
                        approximate=True,
                    )
                await pipe.execute()
        except (RedisError, OSError) as exc:
            # Others miss these entries; the room republishes its whole state on reconnect.
            for room, _, _ in batch:
                if room in self._subs:
                    self._subs[room].missed_publish = True
            log.warning("bus publish failed", error=str(exc), entries=len(batch))

    async def _read_loop(self) -> None:
        backoff = 0.1
        while not self._stopping:
            if not self._subs:
                await asyncio.sleep(_BLOCK_MS / 1000)
                continue
            streams: dict[Any, Any] = {
                stream_key(room): sub.last_id for room, sub in self._subs.items()
            }
            try:
                result = await self.redis.xread(streams, count=_BATCH, block=_BLOCK_MS)
            except (RedisError, OSError) as exc:
                if self.healthy:
                    log.warning("bus read failed; serving local clients only", error=str(exc))
                self.healthy = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not self.healthy:
                self.healthy, backoff = True, 0.1
                log.info("bus reconnected")
                await self._recover()
            for key, entries in result or []:
                room = key.decode().split(":")[1]
                await self._deliver(room, entries)

    async def _deliver(self, room: str, entries: list[Any]) -> None:
        sub = self._subs.get(room)
        if sub is None:
            return
        for entry_id, fields in entries:
            sub.last_id = entry_id.decode()
            if fields.get(b"n", b"").decode() == self.node_id:
                continue
            try:
                await sub.on_message(fields[b"k"], fields[b"d"])
            except Exception:
                log.exception("bus message failed", room=room)

    async def _recover(self) -> None:
        """After an outage: detect trimmed gaps and let rooms republish what others missed."""
        for room, sub in list(self._subs.items()):
            try:
                info = await self.redis.xinfo_stream(stream_key(room))
                deleted = info.get("max-deleted-entry-id", b"0-0")
            except (RedisError, OSError):
                deleted = b"0-0"
            deleted_id = deleted.decode() if isinstance(deleted, bytes) else str(deleted)
            if _later(deleted_id, sub.last_id):
                # Entries we never read were trimmed away: reload from the database.
                await sub.on_gap()
            if sub.missed_publish:
                sub.missed_publish = False
                await sub.on_reconnect()


def _coalesce(batch: list[tuple[str, bytes, bytes]]) -> list[tuple[str, bytes, bytes]]:
    """Merge each run of one room's document updates into one update (one stream entry).

    Yjs updates merge losslessly; other entries keep their place between the runs.
    """
    out: list[tuple[str, bytes, bytes]] = []
    run: list[bytes] = []
    run_room = ""

    def close_run() -> None:
        if run:
            out.append((run_room, b"u", run[0] if len(run) == 1 else merge_updates(*run)))
            run.clear()

    for room, kind, data in batch:
        if kind == b"u" and (not run or room == run_room):
            run_room = room
            run.append(data)
            continue
        close_run()
        if kind == b"u":
            run_room = room
            run.append(data)
        else:
            out.append((room, kind, data))
    close_run()
    return out


def _later(entry_id: str, than: str) -> bool:
    """Stream id order: True when ``entry_id`` comes after ``than``."""
    a = tuple(int(p) for p in entry_id.split("-"))
    b = tuple(int(p) for p in than.split("-"))
    return a > b
