"""Cross-node fan-out on Redis streams, one stream per room.

Plain pub/sub drops whatever is published while a subscriber is reconnecting. A stream keeps
the last entries, so a node reads on from the last id it saw and misses nothing; a node that
was cut off long enough for the stream to be trimmed past that id is told (``on_gap``) and
reloads the room from PostgreSQL. Entries a node published itself are skipped when read back.

One publisher task per node appends what its rooms publish, a batch per script call, and
after each batch rings a doorbell: one pub/sub message naming the node and the rooms it wrote
to. One reader task per
node listens to the doorbell and reads only the streams of rooms it holds that another node
wrote to, so its cost follows the rooms other nodes are active in, not every room it holds.
Pub/sub loses messages across reconnects, so the doorbell is only a hint: the reader also
sweeps every stream it holds once a ``SWEEP_INTERVAL`` (a slice at a time) and right after
reconnecting, and the streams themselves lose nothing.

A node that starts following a room reads its document updates (and the announcements of
what was stored) from ``REPLAY_WINDOW`` seconds before the stream's last entry: an update a
node accepted just before it died may not be in PostgreSQL yet, and the stream still has it.
A Redis that restarted has lost its streams: the reader notices (its run id changed) and every
room reloads from PostgreSQL and publishes its whole state, so no node misses what was lost.

The same pub/sub connection carries access changes (a logout, a deactivation, a new role):
a node that commits one announces whose access changed, and every node re-checks that user's
sockets (``on_access``). Pub/sub loses what is sent while a node is cut off, so a node that
subscribes again re-checks every socket it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
# Bytes of entries a stream holds, roughly (at most about twice this): an entry of n bytes
# trims its stream to STREAM_MAX_BYTES / n entries (at least STREAM_MIN_ENTRIES), so a room
# sending large updates keeps fewer of them, not gigabytes.
STREAM_MAX_BYTES = 64 * 1024 * 1024
STREAM_MIN_ENTRIES = 64
# Entries older than this are trimmed too (a reader that far behind reloads from PostgreSQL),
# and a stream nobody wrote to for STREAM_IDLE_TTL seconds is deleted: a room's stream holds
# recent traffic only, and an idle room holds nothing.
STREAM_MAX_AGE = 600.0
STREAM_IDLE_TTL = 3600
DOORBELL = "dojo:doorbell"
ACCESS = "dojo:access"
SWEEP_INTERVAL = 5.0
_SWEEP_SLICES = 20
_BLOCK_MS = 250
_PUBLISH_WINDOW = 0.005
_BATCH = 500
REPLAY_WINDOW = 10.0
# Entry kinds replayed from before a subscription: document updates, stored-announcements and
# the hellos of the nodes holding the room.
_REPLAYED = (b"u", b"p", b"h")

Handler = Callable[[bytes, bytes, bytes], Awaitable[None]]

# Appends a batch of entries, one per key (ARGV: node, the usual maxlen, doorbell channel,
# doorbell message, then kind, tag, data and the entry's maxlen per key), then trims each
# stream written to by age and sets it to expire when idle (ARGV: the oldest id kept, the idle
# TTL, after the entries), then rings the doorbell: after the entries, so a reader woken by it
# finds them. A maxlen below the usual one (a large entry) trims exactly: the approximate
# trim keeps whole nodes of about a hundred entries. Scripts run whole, so no reader sees
# half a batch.
_APPEND = """
local node, usual = ARGV[1], tonumber(ARGV[2])
local n = #KEYS
local written = {}
for i, key in ipairs(KEYS) do
    local maxlen = tonumber(ARGV[4 + 4 * i])
    local how = maxlen < usual and '=' or '~'
    redis.call('XADD', key, 'MAXLEN', how, maxlen, '*', 'n', node,
               'k', ARGV[1 + 4 * i], 't', ARGV[2 + 4 * i], 'd', ARGV[3 + 4 * i])
    written[key] = true
end
for key in pairs(written) do
    redis.call('XTRIM', key, 'MINID', ARGV[5 + 4 * n])
    redis.call('EXPIRE', key, ARGV[6 + 4 * n])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return #KEYS
"""


def entries_kept(size: int) -> int:
    """How many entries a stream keeps once an entry of ``size`` bytes is added."""
    return max(STREAM_MIN_ENTRIES, min(STREAM_MAXLEN, STREAM_MAX_BYTES // max(size, 1)))


def stream_key(room: str) -> str:
    return f"dojo:{room}:stream"


@dataclass
class _Subscription:
    last_id: str
    replay_until: str  # entries up to here predate the subscription: only _REPLAYED kinds
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
    _outbox: asyncio.Queue[tuple[str, bytes, bytes, bytes]] = field(default_factory=asyncio.Queue)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    healthy: bool = True
    _stopping: bool = False
    _append: Any = None
    _run_id: str | None = None  # the Redis server's run id: it changes when Redis restarts
    # Re-checks the sockets of a user (``tenant:user``), or of everyone (``""``).
    on_access: Callable[[str], Awaitable[None]] | None = None
    _access: list[str] = field(default_factory=list)  # announcements read, to handle

    def __post_init__(self) -> None:
        self._append = self.redis.register_script(_APPEND)

    async def start(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            self._run_id = await self._server_run_id()
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

    async def position(self, room: str) -> tuple[str, str]:
        """Where to read a room's stream from, taken before its state is loaded from the
        database: ``REPLAY_WINDOW`` seconds before the last entry, and that last entry (up to
        which only document updates and stored-announcements are delivered)."""
        try:
            entries = await self.redis.xrevrange(stream_key(room), count=1)
        except (RedisError, OSError) as exc:
            log.warning("bus unavailable; will read the stream from its start", error=str(exc))
            return "0-0", "0-0"
        if not entries:
            return "0-0", "0-0"
        last = entries[0][0].decode()
        millis = int(last.split("-")[0]) - int(REPLAY_WINDOW * 1000)
        return (f"{millis}-0" if millis > 0 else "0-0"), last

    def subscribe(
        self,
        room: str,
        position: tuple[str, str],
        on_message: Handler,
        on_gap: Callable[[], Awaitable[None]],
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        """Deliver the room's stream entries others published, from ``position``."""
        start, replay_until = position
        self._subs[room] = _Subscription(start, replay_until, on_message, on_gap, on_reconnect)

    def unsubscribe(self, room: str) -> None:
        self._subs.pop(room, None)

    async def announce_access(self, who: str) -> None:
        """Tell the other nodes that ``who``'s (``tenant:user``) access changed; a Redis that
        is down loses it, and the nodes re-check everyone when they reconnect."""
        with contextlib.suppress(RedisError, OSError):
            await self.redis.publish(ACCESS, f"{self.node_id}|{who}")

    def publish(self, room: str, kind: bytes, data: bytes, tag: bytes = b"") -> None:
        """Queue an entry for the room's stream (sent by the publisher task, in order)."""
        self._outbox.put_nowait((room, kind, data, tag))

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            first = await self._outbox.get()
            # At most one batch (one script call, one doorbell for every reader) per
            # _PUBLISH_WINDOW: under load, entries gather into fewer, larger batches.
            wait = last + _PUBLISH_WINDOW - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last = loop.time()
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

    async def _send(self, batch: list[tuple[str, bytes, bytes, bytes]]) -> None:
        try:
            entries = _coalesce(batch)
            rooms = dict.fromkeys(room for room, _, _, _ in entries)
            args: list[Any] = [
                self.node_id,
                STREAM_MAXLEN,
                DOORBELL,
                f"{self.node_id}|{','.join(rooms)}",
            ]
            for _, kind, data, tag in entries:
                args += (kind, tag, data, entries_kept(len(data)))
            oldest = int((time.time() - STREAM_MAX_AGE) * 1000)
            args += (f"{oldest}-0", STREAM_IDLE_TTL)
            # One command for the whole batch: one reply to parse instead of one per entry.
            await self._append(keys=[stream_key(room) for room, _, _, _ in entries], args=args)
        except (RedisError, OSError) as exc:
            # Others miss these entries; the room republishes its whole state on reconnect.
            for room, _, _, _ in batch:
                if room in self._subs:
                    self._subs[room].missed_publish = True
            log.warning("bus publish failed", error=str(exc), entries=len(batch))

    async def _read_loop(self) -> None:
        backoff = 0.1
        pubsub: Any = None
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        sweep_all = True
        cursor = 0  # where the next slice of the sweep starts
        again: set[str] = set()  # rooms whose last read was cut at _BATCH entries
        try:
            while not self._stopping:
                try:
                    if pubsub is None:
                        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                        await pubsub.subscribe(DOORBELL, ACCESS)
                        sweep_all = True  # bells were missed while unsubscribed
                        self._access.append("")  # and access changes: re-check everyone
                    wait = 0.0 if again or sweep_all else max(0.0, next_sweep - loop.time())
                    rung = await self._bells(pubsub, min(wait, _BLOCK_MS / 1000))
                    rooms = (rung | again) & self._subs.keys()
                    if sweep_all:
                        rooms = set(self._subs)
                        sweep_all = False
                    elif loop.time() >= next_sweep:
                        # The sweep is spread over the interval, a slice at a time, so no
                        # single read parses seconds' worth of every room's entries.
                        names = list(self._subs)
                        step = -(-len(names) // _SWEEP_SLICES)
                        cursor = cursor if cursor < len(names) else 0
                        rooms.update(names[cursor : cursor + step])
                        cursor += step
                        next_sweep = loop.time() + SWEEP_INTERVAL / _SWEEP_SLICES
                    again = set()
                    await self._handle_access()
                    result = await self._read(rooms)
                except (RedisError, OSError) as exc:
                    if self.healthy:
                        log.warning("bus read failed; serving local clients only", error=str(exc))
                    self.healthy = False
                    await _close_pubsub(pubsub)
                    pubsub = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not self.healthy:
                    try:
                        await self._recover()
                    except (RedisError, OSError):
                        await asyncio.sleep(backoff)
                        continue
                    self.healthy, backoff = True, 0.1
                    log.info("bus reconnected")
                for key, entries in result:
                    room = key.decode().split(":")[1]
                    if len(entries) >= _BATCH:
                        again.add(room)
                    await self._deliver(room, entries)
        finally:
            await _close_pubsub(pubsub)

    async def _bells(self, pubsub: Any, within: float) -> set[str]:
        """Rooms other nodes wrote to, from the doorbells that arrive ``within`` seconds."""
        rooms: set[str] = set()
        message = await pubsub.get_message(timeout=within)
        for _ in range(1000):
            if message is None:
                break
            node, _, names = message["data"].decode().partition("|")
            if node == self.node_id:
                pass
            elif message["channel"] == ACCESS.encode():
                self._access.append(names)
            else:
                rooms.update(names.split(","))
            message = await pubsub.get_message(timeout=0)
        return rooms

    async def _handle_access(self) -> None:
        """Re-check the sockets of each user whose access changed (everyone's at most once)."""
        pending, self._access = self._access, []
        if self.on_access is None or not pending:
            return
        for who in [""] if "" in pending else dict.fromkeys(pending):
            try:
                await self.on_access(who)
            except Exception:
                log.exception("access re-check failed", who=who)

    async def _read(self, rooms: set[str]) -> list[Any]:
        if not rooms:
            return []
        streams: dict[Any, Any] = {stream_key(room): self._subs[room].last_id for room in rooms}
        result = await self.redis.xread(streams, count=_BATCH)
        return result or []

    async def _deliver(self, room: str, entries: list[Any]) -> None:
        sub = self._subs.get(room)
        if sub is None:
            return
        for entry_id, fields in entries:
            sub.last_id = entry_id.decode()
            if fields.get(b"n", b"").decode() == self.node_id:
                continue
            kind = fields[b"k"]
            if kind not in _REPLAYED and not _later(sub.last_id, sub.replay_until):
                continue  # from before we followed the room: chat, awareness, end
            try:
                await sub.on_message(kind, fields[b"d"], fields.get(b"t", b""))
            except Exception:
                log.exception("bus message failed", room=room)

    async def stream_memory(self) -> int:
        """Bytes Redis holds for the streams of the rooms this node follows."""
        rooms = list(self._subs)
        if not rooms:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.memory_usage(stream_key(room))
            sizes = await pipe.execute()
        return sum(size or 0 for size in sizes)

    async def _server_run_id(self) -> str:
        info = await self.redis.info("server")
        return str(info.get("run_id", ""))

    async def _recover(self) -> None:
        """After an outage: detect trimmed gaps and let rooms republish what others missed.

        A Redis that restarted lost every stream, and with them what other nodes published
        and we had not read: every room reloads from PostgreSQL and publishes its whole state.
        """
        run_id = await self._server_run_id()
        restarted, self._run_id = self._run_id is not None and run_id != self._run_id, run_id
        if restarted:
            log.warning("redis restarted; rooms reload and republish their state")
            for room, sub in list(self._subs.items()):
                sub.last_id = sub.replay_until = "0-0"
                await _guarded(sub.on_gap, room)
                await _guarded(sub.on_reconnect, room)
            return
        for room, sub in list(self._subs.items()):
            try:
                info = await self.redis.xinfo_stream(stream_key(room))
                deleted = info.get("max-deleted-entry-id", b"0-0")
            except (RedisError, OSError):
                deleted = b"0-0"
            deleted_id = deleted.decode() if isinstance(deleted, bytes) else str(deleted)
            if _later(deleted_id, sub.last_id):
                # Entries we never read were trimmed away: reload from the database.
                await _guarded(sub.on_gap, room)
            if sub.missed_publish:
                sub.missed_publish = False
                await _guarded(sub.on_reconnect, room)


def _coalesce(
    batch: list[tuple[str, bytes, bytes, bytes]],
) -> list[tuple[str, bytes, bytes, bytes]]:
    """Merge each run of one room's consecutive document updates into one update (one entry).

    Yjs updates merge losslessly. Update tags name the numbers their room gave them,
    ``origin:first:last`` (see ``range_tag``); a run merges only while the numbers follow on,
    and the merged entry's tag names the whole run, so whoever stores it can say exactly
    which numbers are stored. Other entries keep their place between the runs.
    """
    out: list[tuple[str, bytes, bytes, bytes]] = []
    run: list[bytes] = []
    run_room, run_tag = "", b""

    def close_run() -> None:
        if run:
            data = run[0] if len(run) == 1 else merge_updates(*run)
            out.append((run_room, b"u", data, run_tag))
            run.clear()

    for room, kind, data, tag in batch:
        if kind != b"u":
            close_run()
            out.append((room, kind, data, tag))
            continue
        joined = _join(run_tag, tag) if run and room == run_room else None
        if joined is None:
            close_run()
            run_room, joined = room, tag
        run_tag = joined
        run.append(data)
    close_run()
    return out


def range_tag(origin: str, first: int, last: int) -> bytes:
    """The tag of an update entry: the numbers ``first`` to ``last`` of room ``origin``."""
    return f"{origin}:{first}:{last}".encode()


def parse_range_tag(tag: bytes) -> tuple[str, int, int]:
    """``(origin, first, last)`` of a ``range_tag``; ``ValueError`` if it is not one."""
    origin, first, last = tag.decode().split(":")
    return origin, int(first), int(last)


def _join(a: bytes, b: bytes) -> bytes | None:
    """One tag for two runs of numbers when ``b`` follows on from ``a``, else None."""
    try:
        origin_a, first, last = parse_range_tag(a)
        origin_b, first_b, last_b = parse_range_tag(b)
    except ValueError:
        return None
    if origin_a != origin_b or first_b != last + 1:
        return None
    return range_tag(origin_a, first, last_b)


async def _guarded(callback: Callable[[], Awaitable[None]], room: str) -> None:
    """Run a room's recovery callback; its failure is the room's, not the reader's."""
    try:
        await callback()
    except Exception:
        log.exception("room recovery failed", room=room)


async def _close_pubsub(pubsub: Any) -> None:
    if pubsub is not None:
        with contextlib.suppress(RedisError, OSError):
            await pubsub.aclose()


def _later(entry_id: str, than: str) -> bool:
    """Stream id order: True when ``entry_id`` comes after ``than``."""
    a = tuple(int(p) for p in entry_id.split("-"))
    b = tuple(int(p) for p in than.split("-"))
    return a > b
