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

On a Redis Cluster (``REDIS_CLUSTER``) rooms spread over the shards: a room's stream and its
doorbell channel share a hash slot (``dojo:{room}:stream``, ``dojo:{room}:bell``), each batch
is one script call per room, and the doorbell rings on the room's own shard channel
(``SPUBLISH``). The reader keeps one connection per primary holding rooms it follows,
subscribed (``SSUBSCRIBE``) to those rooms' channels, and reads each rung room's stream in one
pipeline. A primary that dies breaks its connection; once its replica serves the slots, every
room whose primary changed is treated as on a Redis that restarted (its replica may lack the
last writes it acknowledged): it reloads from PostgreSQL and publishes its whole state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import structlog
from pycrdt import merge_updates
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from pocdojo.core.redisclient import REDIS_DOWN, AnyRedis, is_cluster, register_script

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
# TTL, after the entries), then rings the doorbell (with the last ARGV, PUBLISH or SPUBLISH):
# after the entries, so a reader woken by it finds them. A maxlen below the usual one (a large
# entry) trims exactly: the approximate trim keeps whole nodes of about a hundred entries.
# Scripts run whole, so no reader sees half a batch.
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
redis.call(ARGV[7 + 4 * n], ARGV[3], ARGV[4])
return #KEYS
"""


def entries_kept(size: int) -> int:
    """How many entries a stream keeps once an entry of ``size`` bytes is added."""
    return max(STREAM_MIN_ENTRIES, min(STREAM_MAXLEN, STREAM_MAX_BYTES // max(size, 1)))


def stream_key(room: str) -> str:
    """A room's stream on one Redis."""
    return f"dojo:{room}:stream"


def cluster_stream_key(room: str) -> str:
    """A room's stream on a cluster, in the room's hash slot."""
    return f"dojo:{{{room}}}:stream"


def bell_channel(room: str) -> str:
    """A room's doorbell on a cluster: a shard channel in the slot of the room's stream."""
    return f"dojo:{{{room}}}:bell"


def _room_of_bell(channel: bytes) -> str:
    return channel.decode().split("{", 1)[1].rsplit("}", 1)[0]


@dataclass
class _Subscription:
    last_id: str
    replay_until: str  # entries up to here predate the subscription: only _REPLAYED kinds
    on_message: Handler
    on_gap: Callable[[], Awaitable[None]]
    on_reconnect: Callable[[], Awaitable[None]]
    missed_publish: bool = False


class _Bells(Protocol):
    """What wakes the reader: rooms another node wrote to, and access changes."""

    async def open(self) -> None: ...

    def follow(self, rooms: Collection[str]) -> None:
        """Ring for these rooms (the ones the node holds) from now on."""

    async def wait(self, within: float) -> tuple[set[str], list[str]]:
        """Rooms rung and access changes announced, from what arrives ``within`` seconds."""
        ...

    async def close(self) -> None: ...


@dataclass
class Bus:
    """The node's connection to every room stream it holds."""

    redis: AnyRedis
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _subs: dict[str, _Subscription] = field(default_factory=dict)
    _subs_changed: int = 0  # counts subscribes and unsubscribes, for the bells to follow
    _outbox: asyncio.Queue[tuple[str, bytes, bytes, bytes]] = field(default_factory=asyncio.Queue)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    healthy: bool = True
    _stopping: bool = False
    _publish_failed: bool = False  # the reader then reconnects, and rooms republish
    _append: Any = None
    # The run ids of the servers holding the streams: a server that restarted, or a replica
    # that took over from a primary, has another.
    _runs: set[str] = field(default_factory=set)
    # Re-checks the sockets of a user (``tenant:user``), or of everyone (``""``).
    on_access: Callable[[str], Awaitable[None]] | None = None
    _access: list[str] = field(default_factory=list)  # announcements read, to handle

    def __post_init__(self) -> None:
        self._append = register_script(self.redis, _APPEND)
        self._cluster = is_cluster(self.redis)
        self._key = cluster_stream_key if self._cluster else stream_key

    async def start(self) -> None:
        with contextlib.suppress(*REDIS_DOWN):
            self._runs, _ = await self._servers()
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
            entries = await self.redis.xrevrange(self._key(room), count=1)
        except REDIS_DOWN as exc:
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
        self._subs_changed += 1

    def unsubscribe(self, room: str) -> None:
        if self._subs.pop(room, None) is not None:
            self._subs_changed += 1

    async def announce_access(self, who: str) -> None:
        """Tell the other nodes that ``who``'s (``tenant:user``) access changed; a Redis that
        is down loses it, and the nodes re-check everyone when they reconnect. (A plain
        channel: on a cluster it reaches every node's subscribers.)"""
        with contextlib.suppress(*REDIS_DOWN):
            await self.redis.execute_command("PUBLISH", ACCESS, f"{self.node_id}|{who}")

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
        entries = _coalesce(batch)
        if not self._cluster:
            rooms = ",".join(dict.fromkeys(room for room, _, _, _ in entries))
            keys, args = self._append_call(entries, DOORBELL, f"{self.node_id}|{rooms}", "PUBLISH")
            # One command for the whole batch: one reply to parse instead of one per entry.
            failures = [await _failure(self._append(keys=keys, args=args))]
            missed = {room for room, _, _, _ in batch} if any(failures) else set()
        else:
            runs: dict[str, list[tuple[str, bytes, bytes, bytes]]] = {}
            for entry in entries:
                runs.setdefault(entry[0], []).append(entry)
            failures = await self._append_rooms(runs)
            missed = {room for room, failed in zip(runs, failures, strict=True) if failed}
        if missed:
            # Others miss these entries; the room republishes its whole state on reconnect.
            for room in missed:
                if room in self._subs:
                    self._subs[room].missed_publish = True
            self._publish_failed = True
            log.warning(
                "bus publish failed",
                error=next(str(failure) for failure in failures if failure),
                rooms=len(missed),
            )

    def _append_call(
        self, entries: list[tuple[str, bytes, bytes, bytes]], channel: str, bell: str, ring: str
    ) -> tuple[list[str], list[Any]]:
        """The keys and arguments of ``_APPEND`` for ``entries``, ringing ``channel``."""
        args: list[Any] = [self.node_id, STREAM_MAXLEN, channel, bell]
        for _, kind, data, tag in entries:
            args += (kind, tag, data, entries_kept(len(data)))
        oldest = int((time.time() - STREAM_MAX_AGE) * 1000)
        args += (f"{oldest}-0", STREAM_IDLE_TTL, ring)
        return [self._key(room) for room, _, _, _ in entries], args

    async def _append_rooms(
        self, runs: dict[str, list[tuple[str, bytes, bytes, bytes]]]
    ) -> list[Exception | None]:
        """On a cluster: one script call per room (a script writes one slot), all in one
        pipeline, which sends each primary its rooms' calls in one round trip. A primary
        without the script (a promoted replica: scripts are not replicated) gets it loaded,
        and its rooms are sent again once. Each room's failure, or None."""
        calls = {
            room: self._append_call(run, bell_channel(room), self.node_id, "SPUBLISH")
            for room, run in runs.items()
        }
        outcome: dict[str, Exception | None] = {}
        results: list[Any] = []

        async def send(calls: dict[str, tuple[list[str], list[Any]]]) -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for keys, args in calls.values():
                    # (redis-py blocks its evalsha method in a cluster pipeline, since a
                    # script may touch several slots; each of these touches one.)
                    pipe.execute_command("EVALSHA", self._append.sha, len(keys), *keys, *args)
                results[:] = await pipe.execute(raise_on_error=False)

        for attempt in range(2):
            failed = await _failure(send(calls))
            if failed is not None:
                outcome.update(dict.fromkeys(calls, failed))
                break
            unloaded = {}
            for (room, call), result in zip(calls.items(), results, strict=True):
                if isinstance(result, NoScriptError) and attempt == 0:
                    unloaded[room] = call
                outcome[room] = result if isinstance(result, Exception) else None
            if not unloaded:
                break
            try:
                await self.redis.script_load(_APPEND)  # on every primary
            except REDIS_DOWN:
                break
            calls = unloaded
        return [outcome[room] for room in runs]

    def _open_bells(self) -> _Bells:
        if isinstance(self.redis, RedisCluster):
            return _ShardBells(self.redis, self.node_id)
        return _Doorbell(cast(Redis, self.redis), self.node_id)

    async def _read_loop(self) -> None:
        backoff = 0.1
        bells: _Bells | None = None
        followed = -1  # the _subs_changed the bells follow
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        sweep_all = True
        cursor = 0  # where the next slice of the sweep starts
        again: set[str] = set()  # rooms whose last read was cut at _BATCH entries
        try:
            while not self._stopping:
                try:
                    if self._publish_failed:
                        self._publish_failed = False
                        raise RedisConnectionError("a publish failed")
                    if bells is None:
                        bells = self._open_bells()
                        await bells.open()
                        followed = -1
                        sweep_all = True  # bells were missed while unsubscribed
                        self._access.append("")  # and access changes: re-check everyone
                    if followed != self._subs_changed:
                        followed = self._subs_changed
                        bells.follow(self._subs.keys())
                    wait = 0.0 if again or sweep_all else max(0.0, next_sweep - loop.time())
                    rung, access = await bells.wait(min(wait, _BLOCK_MS / 1000))
                    self._access += access
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
                except Exception as exc:  # Redis errors, and whatever the client raises meanwhile
                    if not isinstance(exc, REDIS_DOWN):
                        log.exception("bus read failed unexpectedly")
                    if self.healthy:
                        log.warning("bus read failed; serving local clients only", error=str(exc))
                    self.healthy = False
                    if bells is not None:
                        await bells.close()
                    bells = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if not self.healthy:
                    try:
                        await self._recover()
                    except Exception as exc:
                        if not isinstance(exc, REDIS_DOWN):
                            log.exception("bus recovery failed unexpectedly")
                        await asyncio.sleep(backoff)
                        continue
                    self.healthy, backoff = True, 0.1
                    log.info("bus reconnected")
                for room, entries in result:
                    if len(entries) >= _BATCH:
                        again.add(room)
                    await self._deliver(room, entries)
        finally:
            if bells is not None:
                await bells.close()

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

    async def _read(self, rooms: set[str]) -> list[tuple[str, list[Any]]]:
        """The entries after each room's last id read, as ``(room, entries)``."""
        if not rooms:
            return []
        if not self._cluster:
            streams: dict[Any, Any] = {stream_key(room): self._subs[room].last_id for room in rooms}
            result = await self.redis.xread(streams, count=_BATCH)
            return [(key.decode().split(":")[1], entries) for key, entries in result or []]
        # On a cluster a command reads one slot: one XRANGE past the last id per room, in one
        # pipeline. (Not XREAD: the cluster client finds its keys by asking a server, the one
        # it asked first, which may be dead by now.)
        names = list(rooms)
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in names:
                pipe.xrange(self._key(room), min=f"({self._subs[room].last_id}", count=_BATCH)
            results = await pipe.execute()
        return [(room, found) for room, found in zip(names, results, strict=True) if found]

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
                pipe.memory_usage(self._key(room))
            sizes = await pipe.execute()
        return sum(size or 0 for size in sizes)

    async def _servers(self) -> tuple[set[str], Callable[[str], str]]:
        """The run ids of the servers holding streams now, and which one holds a room's."""
        if not isinstance(self.redis, RedisCluster):
            info = await self.redis.info("server")
            run_id = str(info.get("run_id", ""))
            return {run_id}, lambda room: run_id
        slots = await _Slots.read(self.redis)
        runs: dict[str, str] = {}
        for name in slots.primaries():
            node = slots.node(name)
            try:
                info = await node.execute_command("INFO", "server")
            finally:
                await node.disconnect()
            runs[name] = str(info.get("run_id", ""))
        return set(runs.values()), lambda room: runs[slots.primary_of(self._key(room))]

    async def _recover(self) -> None:
        """After an outage: detect trimmed gaps and let rooms republish what others missed.

        A Redis that restarted lost every stream, and with them what other nodes published
        and we had not read; a replica that took over a primary's slots may lack its last
        writes. Every room on such a server reloads from PostgreSQL and publishes its whole
        state.
        """
        runs, run_of = await self._servers()
        known, self._runs = self._runs, runs
        lost = {room for room in self._subs if known and run_of(room) not in known}
        if lost:
            log.warning(
                "redis restarted or failed over; its rooms reload and republish their state",
                rooms=len(lost),
            )
        for room, sub in list(self._subs.items()):
            if room in lost:
                sub.last_id = sub.replay_until = "0-0"
                sub.missed_publish = False
                await _guarded(sub.on_gap, room)
                await _guarded(sub.on_reconnect, room)
                continue
            try:
                info = await self.redis.xinfo_stream(self._key(room))
                deleted = info.get("max-deleted-entry-id", b"0-0")
            except REDIS_DOWN:
                deleted = b"0-0"
            deleted_id = deleted.decode() if isinstance(deleted, bytes) else str(deleted)
            if _later(deleted_id, sub.last_id):
                # Entries we never read were trimmed away: reload from the database.
                await _guarded(sub.on_gap, room)
            if sub.missed_publish:
                sub.missed_publish = False
                await _guarded(sub.on_reconnect, room)


class _Doorbell:
    """The bells on one Redis: one channel, each message naming a batch's node and rooms."""

    def __init__(self, redis: Redis, node_id: str) -> None:
        self._redis, self._node_id = redis, node_id
        self._pubsub: Any = None

    async def open(self) -> None:
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(DOORBELL, ACCESS)

    def follow(self, rooms: Collection[str]) -> None:
        """Every room rings on the one channel."""

    async def wait(self, within: float) -> tuple[set[str], list[str]]:
        rooms: set[str] = set()
        access: list[str] = []
        message = await self._pubsub.get_message(timeout=within)
        for _ in range(1000):
            if message is None:
                break
            node, _, names = message["data"].decode().partition("|")
            if node == self._node_id:
                pass
            elif message["channel"] == ACCESS.encode():
                access.append(names)
            else:
                rooms.update(names.split(","))
            message = await self._pubsub.get_message(timeout=0)
        return rooms, access

    async def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await self._pubsub.aclose()


_Inbox = asyncio.Queue[tuple[str, str] | Exception]


class _Slots:
    """Which primary serves each hash slot, as the cluster says now (``CLUSTER SLOTS``): read
    apart from the client's own map, which the client refreshes by itself on redirections and
    errors (forcing it to refresh while other tasks use it would orphan their connections)."""

    def __init__(self, cluster: RedisCluster, answer: dict[tuple[int, int], Any]) -> None:
        self._cluster = cluster
        self._ranges = sorted(
            (first, last, f"{shard['primary'][0]}:{shard['primary'][1]}")
            for (first, last), shard in answer.items()
        )

    @classmethod
    async def read(cls, cluster: RedisCluster) -> _Slots:
        return cls(cluster, await cluster.execute_command("CLUSTER SLOTS"))

    def primaries(self) -> set[str]:
        return {name for _, _, name in self._ranges}

    def primary_of(self, key: str) -> str:
        slot = self._cluster.keyslot(key)
        for first, last, name in self._ranges:
            if first <= slot <= last:
                return name
        # No primary serves it: a failover is under way.
        raise RedisConnectionError(f"no primary serves the slot of {key}")

    def node(self, name: str) -> ClusterNode:
        """A node of our own for the primary ``name`` (``host:port``), with the client's
        connection settings; its connections are ours to close."""
        host, _, port = name.rpartition(":")
        options: dict[str, Any] = dict(self._cluster.get_connection_kwargs())
        return ClusterNode(host, int(port), **options)


class _ShardBells:
    """The bells on a cluster: each followed room's shard channel, subscribed on a connection
    to the primary serving its slot (one connection per primary), and the access channel on
    one of them. A connection that fails, or a slot that moves away, fails ``wait``: the
    reader opens the bells again on the slot map as it is then."""

    def __init__(self, cluster: RedisCluster, node_id: str) -> None:
        self._cluster, self._node_id = cluster, node_id
        self._shards: dict[str, _Shard] = {}  # by the primary's name
        self._where: dict[str, str] = {}  # room -> the primary it is followed on
        self._inbox: _Inbox = asyncio.Queue()

    async def open(self) -> None:
        self._slots = await _Slots.read(self._cluster)
        self._shard(min(self._slots.primaries())).access = True

    def _shard(self, name: str) -> _Shard:
        if name not in self._shards:
            self._shards[name] = _Shard(self._slots.node(name), self._node_id, self._inbox)
        return self._shards[name]

    def follow(self, rooms: Collection[str]) -> None:
        for room in [room for room in self._where if room not in rooms]:
            self._shards[self._where.pop(room)].leave(bell_channel(room))
        for room in rooms:
            if room not in self._where:
                name = self._slots.primary_of(bell_channel(room))
                self._shard(name).join(bell_channel(room))
                self._where[room] = name

    async def wait(self, within: float) -> tuple[set[str], list[str]]:
        rooms: set[str] = set()
        access: list[str] = []
        try:
            async with asyncio.timeout(within):
                item = await self._inbox.get()
        except TimeoutError:
            return rooms, access
        while True:
            if isinstance(item, Exception):
                raise item
            kind, name = item
            if kind == "room":
                rooms.add(name)
            else:
                access.append(name)
            try:
                item = self._inbox.get_nowait()
            except asyncio.QueueEmpty:
                return rooms, access

    async def close(self) -> None:
        await asyncio.gather(*(shard.close() for shard in self._shards.values()))
        self._shards.clear()


class _Shard:
    """A connection to one primary, subscribed to the bells wanted on it (sent between reads,
    so a room followed now is subscribed within ``_BLOCK_MS``). What arrives goes to the inbox:
    ``("room", room)`` for a bell another node rang, or for a bell just subscribed (the reader
    then reads the room once, for what was written before); ``("access", who)``; a failure."""

    def __init__(self, node: ClusterNode, node_id: str, inbox: _Inbox) -> None:
        self._conn: Connection = node.connection_class(**node.connection_kwargs)
        self._node_id = node_id
        self._inbox = inbox
        self.access = False  # subscribe to the access channel too
        self._wanted: set[str] = set()
        self._subscribed: set[str] = set()
        self._leaving: dict[str, int] = {}  # unsubscribes sent, not yet confirmed
        self._task = asyncio.create_task(self._run(), name=f"bus-shard-{node.name}")

    def join(self, channel: str) -> None:
        self._wanted.add(channel)

    def leave(self, channel: str) -> None:
        self._wanted.discard(channel)

    async def _run(self) -> None:
        try:
            await self._conn.connect()  # type: ignore[no-untyped-call]
            if self.access:
                await self._conn.send_command("SUBSCRIBE", ACCESS)
            while True:
                await self._sync()
                response = await self._conn.read_response(timeout=_BLOCK_MS / 1000)
                if response is not None:
                    self._handle(response)
        except REDIS_DOWN as exc:
            self._inbox.put_nowait(exc)
        except Exception as exc:  # anything else ends the bells too: the reader opens them again
            log.exception("bus shard connection failed")
            self._inbox.put_nowait(RedisConnectionError(f"shard connection failed: {exc!r}"))

    async def _sync(self) -> None:
        # One channel per command: the channels of one SSUBSCRIBE must share a slot.
        joining = self._wanted - self._subscribed
        leaving = self._subscribed - self._wanted
        commands = [("SSUBSCRIBE", channel) for channel in joining]
        commands += [("SUNSUBSCRIBE", channel) for channel in leaving]
        if not commands:
            return
        self._subscribed = (self._subscribed | joining) - leaving
        for channel in leaving:
            self._leaving[channel] = self._leaving.get(channel, 0) + 1
        await self._conn.send_packed_command(self._conn.pack_commands(commands))

    def _handle(self, response: Any) -> None:
        kind, channel = response[0], response[1]
        if kind == b"smessage":
            if response[2].decode() != self._node_id:
                self._inbox.put_nowait(("room", _room_of_bell(channel)))
        elif kind == b"message":
            node, _, who = response[2].decode().partition("|")
            if node != self._node_id:
                self._inbox.put_nowait(("access", who))
        elif kind == b"ssubscribe":
            self._inbox.put_nowait(("room", _room_of_bell(channel)))
        elif kind == b"sunsubscribe":
            name = channel.decode()
            if self._leaving.get(name):
                self._leaving[name] -= 1
            elif name in self._subscribed:
                # Not asked for: the slot moved to another primary.
                raise RedisConnectionError(f"{name} moved to another shard")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, *REDIS_DOWN):
            await self._task
        with contextlib.suppress(*REDIS_DOWN):
            await self._conn.disconnect()


async def _failure(call: Awaitable[Any]) -> Exception | None:
    """Await ``call``: its failure, or None. Any failure counts (the room republishes later),
    so the publisher never dies of one: the cluster client can raise more than Redis errors
    while a primary fails over. A cancellation propagates."""
    try:
        await call
    except Exception as exc:
        if not isinstance(exc, REDIS_DOWN):
            log.error("bus publish failed unexpectedly", exc_info=exc)
        return exc
    return None


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


def _later(entry_id: str, than: str) -> bool:
    """Stream id order: True when ``entry_id`` comes after ``than``."""
    a = tuple(int(p) for p in entry_id.split("-"))
    b = tuple(int(p) for p in than.split("-"))
    return a > b
