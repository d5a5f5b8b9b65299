"""The rooms a node holds: loading on demand, persisting, compacting, unloading when idle.

Durability: an update accepted from a socket here is applied, fanned out, published to the
room's stream, and written to PostgreSQL by the next flush, at most ``persist_interval``
seconds later (0.2 s by default). Every node holding the room keeps the updates other nodes
published until one announces them stored, and writes before its own those they depend on
(``Room.take_writes``); it writes the others after ``store_grace`` seconds (their node
died). So an update any node or stream holds reaches PostgreSQL within about
``store_grace + persist_interval`` seconds even when the node that accepted it died at once;
one that only the dead node and its clients held comes back when those clients reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.periodic import Periodic
from pocdojo.core.redisclient import REDIS_DOWN, AnyRedis, register_script
from pocdojo.crdt import document
from pocdojo.realtime import voice
from pocdojo.realtime.bus import Bus
from pocdojo.realtime.peer import REFUSAL_CODES, REFUSALS, CloseCode, role_in_session
from pocdojo.realtime.randori import OFF, Rotation
from pocdojo.realtime.recorder import Recorders
from pocdojo.realtime.room import Room, Writes, is_panic

log = structlog.get_logger(__name__)

# A socket counts as online while its node refreshed it within this many seconds.
_ONLINE_TTL = 45.0
# Each node says it holds a room this often (a small stream entry); a room announces what it
# stored only while another node was heard from in the room within _OTHERS_TTL, so a room
# held by one node costs Redis nothing per flush.
HELLO_INTERVAL = 5.0
_OTHERS_TTL = 3 * HELLO_INTERVAL
# A room whose unload failed is tried again after 1, 2, 4 ... seconds, at most this many.
_UNLOAD_RETRY_MAX = 60.0

# Takes a place among a user's sockets (KEYS[1]) unless ARGV[3] are taken: drops the lapsed
# (score before ARGV[1]), then adds ARGV[4] lapsing at ARGV[2]; the key expires after ARGV[5].
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class RoomSettings:
    persist_interval: float = 0.2
    compact_every: int = 500
    history_interval: float = 60.0
    idle_unload: float = 30.0
    max_document_bytes: int = 8 * 1024 * 1024

    @property
    def store_grace(self) -> float:
        """How long an update from another node waits to be announced stored before this
        node writes it: two of its node's flushes and the announcement's trip through Redis."""
        return max(0.5, 2 * self.persist_interval + 0.1)


class RoomMetrics:
    """Prometheus metrics of the realtime side."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rooms = Gauge("pocdojo_rooms_active", "Rooms loaded on this node", registry=registry)
        self.connections = Gauge(
            "pocdojo_ws_connections", "Open sockets", ["socket"], registry=registry
        )
        self.updates = Counter(
            "pocdojo_doc_updates", "Document updates accepted from sockets", registry=registry
        )
        self.bytes_in = Counter(
            "pocdojo_ws_received_bytes", "Bytes received on sockets", registry=registry
        )
        self.bytes_out = Counter(
            "pocdojo_ws_sent_bytes", "Bytes sent on sockets", registry=registry
        )
        self.fanout = Histogram(
            "pocdojo_fanout_latency_seconds",
            "From receiving a message to writing it to another socket",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=registry,
        )
        self.stream_memory = Gauge(
            "pocdojo_stream_memory_bytes",
            "Redis memory of the room streams this node follows",
            registry=registry,
        )
        self.remote_stored = Counter(
            "pocdojo_remote_updates_stored",
            "Updates another node accepted that this node stored (before its own updates, or"
            " because that node did not announce them in time)",
            registry=registry,
        )
        self.bus_up = Gauge(
            "pocdojo_bus_up",
            "1 while this node's bus reads the room streams (0: its rooms do not cross nodes)",
            registry=registry,
        )
        self.persist_lag = Histogram(
            "pocdojo_persist_lag_seconds",
            "How long accepted updates waited in memory before reaching PostgreSQL",
            buckets=(0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=registry,
        )

    def sent(self, size: int, latency: float | None) -> None:
        self.bytes_out.inc(size)
        if latency is not None:
            self.fanout.observe(latency)


class Rooms:
    """Every room loaded on this node."""

    def __init__(
        self,
        pool: Any,
        redis: AnyRedis,
        bus: Bus,
        settings: RoomSettings,
        metrics: RoomMetrics,
        recorders: Recorders | None = None,
    ) -> None:
        self.pool = pool
        self.recorders = recorders
        self.redis = redis
        self.bus = bus
        self.settings = settings
        self.metrics = metrics
        metrics.bus_up.set_function(lambda: 1.0 if bus.healthy else 0.0)
        self.rooms: dict[UUID, Room] = {}
        self._loading: dict[UUID, asyncio.Future[Room]] = {}
        self._flusher = Periodic("room-flusher", settings.persist_interval, self._flush_all)
        self._online: dict[UUID, set[str]] = {}
        self._presence = Periodic("presence", _ONLINE_TTL / 3, self._refresh_online)
        self._hello = Periodic("room-hello", HELLO_INTERVAL, self._say_hello)
        self._claim = register_script(redis, _CLAIM)
        self._unloading: set[asyncio.Task[Any]] = set()
        self._closing: dict[UUID, asyncio.Future[None]] = {}
        self._stopping = False  # no idle timer is armed once the node stops
        self._last_history = time.monotonic()
        self._background: set[asyncio.Task[None]] = set()
        self._turns: dict[UUID, asyncio.Task[None]] = {}  # randori turn timers, per room
        bus.on_access = self._on_access

    async def start(self) -> None:
        self._flusher.start()
        self._presence.start()
        self._hello.start()

    async def stop(self) -> None:
        """Close every socket (1001), persist and unload every room.

        A room that cannot be stored is logged and passed over: the others are still stored,
        and the node still stops.
        """
        self._stopping = True
        for room in self.rooms.values():
            self._cancel_idle(room)
        await self._presence.stop()
        await self._hello.stop()
        await self._flusher.stop()
        for task in list(self._background):
            task.cancel()
        if self.recorders is not None:
            await self.recorders.close()
        await self.close_sockets()
        for room in list(self.rooms.values()):
            await self._unload_or_log(room)
        # Unloads already under way (started by an idle timer) finish before the pool closes.
        if self._unloading:
            await asyncio.gather(*self._unloading, return_exceptions=True)

    async def flush(self) -> None:
        """Store every room's pending updates now (the node is stopping)."""
        await self._flush_all()

    async def close_sockets(self) -> None:
        """Close every socket of every room with 1001 (the node is going away)."""
        await asyncio.gather(
            *(
                room.close_all(CloseCode.GOING_AWAY, "server shutting down")
                for room in self.rooms.values()
            )
        )

    async def acquire(self, session_id: UUID, tenant_id: UUID) -> Room:
        """The loaded room, loading it if needed; concurrent callers share one load."""
        closing = self._closing.get(session_id)
        if closing is not None:
            # Being unloaded: once its updates and snapshot are stored, it is gone (and loaded
            # again here) or, if storing failed, still loaded.
            await asyncio.shield(closing)
            return await self.acquire(session_id, tenant_id)
        room = self.rooms.get(session_id)
        if room is not None:
            self._cancel_idle(room)
            return room
        pending = self._loading.get(session_id)
        if pending is not None:
            room = await asyncio.shield(pending)
            self._cancel_idle(room)
            return room
        future: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
        self._loading[session_id] = future
        try:
            room = await self._load(session_id, tenant_id)
            future.set_result(room)
            return room
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so an unawaited failure is not logged twice
            raise
        finally:
            del self._loading[session_id]

    async def _load(self, session_id: UUID, tenant_id: UUID) -> Room:
        room_key = str(session_id)
        position = await self.bus.position(room_key)
        doc = await document.load(self.pool, tenant_id, session_id, serve=True)
        room = Room(
            session_id,
            tenant_id,
            doc,
            publish=lambda kind, data, tag: self.bus.publish(room_key, kind, data, tag),
            max_document_bytes=self.settings.max_document_bytes,
        )
        room.on_update = lambda size: self.metrics.updates.inc()
        room.on_sent = self.metrics.sent
        self.rooms[session_id] = room
        self.bus.subscribe(
            room_key,
            position,
            on_message=lambda kind, data, tag: self._remote(room, kind, data, tag),
            on_gap=lambda: self._reload(room),
            on_reconnect=lambda: self._republish(room),
        )
        self.bus.publish(room_key, b"h", b"")
        self.metrics.rooms.set(len(self.rooms))
        await self._load_randori(room, announce=False)
        async with tenant_tx(self.pool, tenant_id) as conn:
            recording = await recordings_db.running(conn, session_id)
        if recording is not None:  # loaded during a recording: its timeline gets our state
            room.recording_changed(recording.id)
        log.info("room loaded", session=room_key, bytes=room.size)
        return room

    def release(self, room: Room) -> None:
        """A socket left; unload the room after a while if nobody is left.

        After a failed unload (PostgreSQL unreachable) the room waits longer each time, up
        to a minute, so that rooms retrying at once do not flood the log and the database.
        """
        if (
            room.empty
            and room.idle_task is None
            and not self._stopping
            and self.rooms.get(room.session_id) is room
        ):
            delay = self.settings.idle_unload
            if room.unload_failures:
                delay = max(delay, min(_UNLOAD_RETRY_MAX, 2.0 ** (room.unload_failures - 1)))
            room.idle_task = asyncio.create_task(self._unload_when_idle(room, delay))

    def _cancel_idle(self, room: Room) -> None:
        if room.idle_task is not None:
            room.idle_task.cancel()
            room.idle_task = None

    async def _unload_when_idle(self, room: Room, delay: float) -> None:
        await asyncio.sleep(delay)
        room.idle_task = None
        if room.empty:
            task = asyncio.current_task()
            assert task is not None
            self._unloading.add(task)
            try:
                await self._unload_or_log(room)
            finally:
                self._unloading.discard(task)

    async def _unload_or_log(self, room: Room) -> None:
        """Unload ``room``; a failure (its log unreadable, its rows refused, PostgreSQL
        unreachable) is logged, so that the rooms unloaded after it are still stored; the
        room stays loaded, and is unloaded again once idle."""
        try:
            await self.unload(room, reason="unload")
        except Exception:
            log.exception("room unload failed", session=str(room.session_id))

    async def unload(self, room: Room, *, reason: str) -> None:
        """Persist everything, fold the log into a snapshot, record the code, forget it.

        One unload of a room runs at a time: another one under way (an idle timer's while
        the node stops, or the host ends the session) is waited for first.
        """
        while (other := self._closing.get(room.session_id)) is not None:
            await asyncio.shield(other)
        if self.rooms.get(room.session_id) is not room:
            return
        self._cancel_idle(room)
        # Sockets arriving meanwhile wait (``acquire``) for the outcome.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing[room.session_id] = done
        try:
            # Stored before it is forgotten: if storing fails, the room stays loaded, with
            # what it holds, and is unloaded later (nothing is dropped with it).
            try:
                await self._persist(room)
                # The live document folded in: whatever this node holds that the log lacks
                # (others' updates not yet announced stored) is stored now.
                await document.compact(self.pool, room.tenant_id, room.session_id, room.document)
            except Exception:
                room.unload_failures += 1
                self.release(room)  # still loaded: its idle timer again, if it stays empty
                raise
            del self.rooms[room.session_id]
            self._stop_turns(room.session_id)
            self.bus.unsubscribe(str(room.session_id))
            self.metrics.rooms.set(len(self.rooms))
            try:
                await self._record_history(room, reason)
            except Exception:  # the document is stored; only this history row is missing
                log.exception("recording the code's history failed", session=str(room.session_id))
        finally:
            if self._closing.get(room.session_id) is done:
                del self._closing[room.session_id]
            done.set_result(None)
        log.info("room unloaded", session=str(room.session_id))

    @contextlib.contextmanager
    def _panics_drop(self, room: Room) -> Iterator[None]:
        """A pycrdt panic on the room's document inside the block (the bus reader's or the
        flusher's, which serve every room) drops that room, as a socket's panic does, and
        goes no further: the task goes on serving the other rooms."""
        try:
            yield
        except BaseException as exc:
            if not is_panic(exc):
                raise
            if not room.poisoned:
                log.error("pycrdt panicked; the room is reloaded", exc_info=exc)
                self.drop_poisoned(room)

    def drop_poisoned(self, room: Room) -> None:
        """pycrdt panicked on the room's document, which may panic on every edit from now on:
        forget the room at once, then (in a task of its own, not the socket's) close its
        sockets with 1011 and store what it accepted and had not stored yet, as the bytes it
        was given (the document is not touched again). Clients reconnect, once that is
        stored, to the room loaded afresh from PostgreSQL, and their resync brings it what
        it lacks."""
        room.poisoned = True
        if self.rooms.get(room.session_id) is room:
            self._cancel_idle(room)
            del self.rooms[room.session_id]
            self._stop_turns(room.session_id)
            self.bus.unsubscribe(str(room.session_id))
            self.metrics.rooms.set(len(self.rooms))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing.setdefault(room.session_id, done)
        task = asyncio.create_task(self._drop(room, done))
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)

    async def _drop(self, room: Room, done: asyncio.Future[None]) -> None:
        try:
            await room.close_all(CloseCode.INTERNAL_ERROR, "internal error, reconnect")
            writes = Writes(room.remote, room.unsaved, None, room.timeline_states)
            room.remote, room.unsaved, room.timeline_states = [], [], []
            if writes.rows() or writes.states:
                await document.append(
                    self.pool, room.tenant_id, room.session_id, writes.rows(), writes.timeline()
                )
                for marker in writes.markers(room.origin):
                    self.bus.publish(str(room.session_id), b"p", marker)
        except Exception:  # what is lost here, the clients still hold and send on reconnecting
            log.exception("storing a dropped room failed", session=str(room.session_id))
        finally:
            if self._closing.get(room.session_id) is done:
                del self._closing[room.session_id]
            done.set_result(None)
        log.info("room dropped", session=str(room.session_id))

    async def end(self, session_id: UUID, tenant_id: UUID) -> None:
        """The host ended the session: close this node's sockets and tell every other node."""
        self.bus.publish(str(session_id), b"x", b"end")
        await self._end_local(session_id, tenant_id)

    async def _end_local(self, session_id: UUID, tenant_id: UUID) -> None:
        room = self.rooms.get(session_id)
        if room is not None:
            await room.close_all(CloseCode.ENDED, "the session has ended")
            await self.unload(room, reason="end")
        else:
            doc = await document.load(self.pool, tenant_id, session_id)
            await self._history_row(tenant_id, session_id, doc.code(), "end")

    async def voice_event(self, room: Room, text: str) -> None:
        """A ``voice`` event from another node: a user who joined the call from a socket
        there is no longer in it from their sockets here, nor sending to this node's
        recorder. Unless the event is older than a join here: events of two nodes arrive in
        no set order, so Redis, where each join is stored before it is told, decides."""
        taken = voice.taken_over(text)
        if taken is None:
            return
        user_id, connection = taken
        here = {p.peer_id for p in room.event_peers if p.user_id == user_id and p.in_voice}
        if not here - {connection}:
            return
        if await voice.connection_of(self.redis, room.session_id, user_id) in here:
            return  # a socket here joined after: the event is stale
        if room.voice_taken_over(user_id, connection) and self.recorders is not None:
            self.background(self.recorders.left(room.session_id, user_id))

    # --- recording -------------------------------------------------------------------------

    async def recording_changed(
        self, session_id: UUID, tenant_id: UUID, event: dict[str, Any]
    ) -> None:
        """The host started or stopped the recording (committed): tell every socket, on
        every node; on a stop, each node uploads the parts its recorder peers wrote.

        A start begins the recording's code timeline: every node holding the room adds its
        document as it stands; here, the stored document too, for a room nobody holds.
        """
        text = json.dumps(event)
        self.bus.publish(str(session_id), b"c", text.encode())
        self._recording(session_id, text, event)
        if event.get("state") == "started" and session_id not in self.rooms:
            stored = await document.load(self.pool, tenant_id, session_id)
            row = (UUID(event["recordingId"]), time.time(), stored.encode(), True, None)
            await document.append(self.pool, tenant_id, session_id, [], [row])

    def _recording(self, session_id: UUID, text: str, event: dict[str, Any]) -> None:
        room = self.rooms.get(session_id)
        if room is not None:
            room.broadcast_event(text)
            started = event.get("state") == "started"
            room.recording_changed(UUID(event["recordingId"]) if started else None)
        if event.get("state") == "stopped" and self.recorders is not None:
            self.background(self.recorders.stopped(session_id, UUID(event["recordingId"])))

    # --- randori -----------------------------------------------------------------------------

    async def randori_changed(self, session_id: UUID, tenant_id: UUID) -> None:
        """The host turned randori on, changed it or turned it off (committed): apply it
        here and tell every other node holding the room, which read it again."""
        room = self.rooms.get(session_id)
        if room is not None:
            await self._load_randori(room, announce=True)
        self.bus.publish(str(session_id), b"r", b"")

    async def _load_randori(self, room: Room, *, announce: bool) -> None:
        async with tenant_tx(self.pool, room.tenant_id) as conn:
            rotation = Rotation.of(await dojos_db.randori(conn, room.session_id))
        if self.rooms.get(room.session_id) is not room:
            return
        self._stop_turns(room.session_id)
        room.randori = rotation
        if rotation is None:
            room.set_pilot(None)
            if announce:
                room.broadcast_event(json.dumps(OFF))
            return
        task = asyncio.create_task(self._take_turns(room, rotation), name="randori")
        self._turns[room.session_id] = task

    async def _take_turns(self, room: Room, rotation: Rotation) -> None:
        """Hand the keyboard to each pilot in turn, on time, and announce every turn."""
        while True:
            now = time.time()
            turn = rotation.turn(now)
            room.set_pilot(turn.pilot)
            room.broadcast_event(json.dumps(rotation.event(now)))
            await asyncio.sleep(max(0.0, turn.ends_at - time.time()) + 0.001)

    def _stop_turns(self, session_id: UUID) -> None:
        task = self._turns.pop(session_id, None)
        if task is not None:
            task.cancel()

    def randori_event(self, room: Room) -> dict[str, Any] | None:
        """The room's randori state now, for a welcome (None: off)."""
        return room.randori.event(time.time()) if room.randori is not None else None

    # --- access changes --------------------------------------------------------------------

    async def access_changed(self, tenant_id: UUID, user_id: UUID) -> None:
        """A user's access changed (committed): re-check their sockets here and on every
        node."""
        await self.recheck(tenant_id, user_id)
        await self.bus.announce_access(f"{tenant_id}:{user_id}")

    async def _on_access(self, who: str) -> None:
        """Another node announced an access change (``""``: we may have missed some)."""
        tenant, _, user = who.partition(":")
        check = self.recheck(UUID(tenant), UUID(user)) if who else self.recheck(None, None)
        # In its own task: the bus reader goes on reading while sockets close.
        self.background(check)

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in a task of its own, kept until done (cancelled at stop)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def recheck(self, tenant_id: UUID | None, user_id: UUID | None) -> None:
        """Hold a user's sockets (or everyone's, given None) to what the database says now.

        A socket whose user may no longer be in the session (logged out, deactivated, no
        longer a participant) is closed with the code its connecting would get now, one the
        stock client does not retry; one whose role changed (a user made viewer becomes an
        observer, and back) takes the new role in place and everyone in the room is told.
        """
        for room in list(self.rooms.values()):
            if tenant_id is not None and room.tenant_id != tenant_id:
                continue
            peers = [
                p
                for p in room.doc_peers | room.event_peers
                if user_id is None or p.user_id == user_id
            ]
            if peers:
                try:
                    await self._recheck_room(room, peers)
                except Exception:
                    log.exception("access re-check failed", session=str(room.session_id))

    async def _recheck_room(self, room: Room, peers: list[Any]) -> None:
        keys = {(p.user_id, p.login_session_id) for p in peers}
        async with tenant_tx(self.pool, room.tenant_id) as conn:
            found = {key: await dojos_db.admission(conn, room.session_id, *key) for key in keys}
        closing, roles = [], {}
        for peer in peers:
            try:
                role = role_in_session(found[(peer.user_id, peer.login_session_id)])
            except REFUSALS as exc:
                log.info("socket closed: access revoked", code=REFUSAL_CODES[exc.status])
                closing.append(peer.close(REFUSAL_CODES[exc.status], exc.message))
                continue
            if role != peer.role:
                roles[peer.user_id] = role
        for user, role in roles.items():
            room.change_role(user, role)
        await asyncio.gather(*closing)

    async def _remote(self, room: Room, kind: bytes, data: bytes, tag: bytes) -> None:
        room.others_seen = time.monotonic()
        if kind == b"u":
            with self._panics_drop(room):
                room.apply_remote_update(data, tag)
        elif kind == b"p":
            room.stored(data)
        elif kind == b"a":
            room.apply_remote_awareness(data)
        elif kind == b"e":
            text = data.decode()
            await self.voice_event(room, text)
            room.broadcast_event(text, to_user=_addressee(text))
        elif kind == b"x" and data == b"end":
            await self._end_local(room.session_id, room.tenant_id)
        elif kind == b"r":
            await self._load_randori(room, announce=True)
        elif kind == b"c":
            self._recording(room.session_id, data.decode(), json.loads(data))

    async def _reload(self, room: Room) -> None:
        doc = await document.load(self.pool, room.tenant_id, room.session_id)
        room.merge_state(doc.encode())

    async def _republish(self, room: Room) -> None:
        """Others missed what we published during an outage: send them our whole state."""
        room.republish()

    async def _flush_all(self) -> None:
        """Persist every room's pending updates; compact and record history when due."""
        for room in list(self.rooms.values()):
            try:
                with self._panics_drop(room):
                    await self._persist(room)
                if room.updates_since_compaction >= self.settings.compact_every:
                    room.updates_since_compaction = 0
                    await document.compact(self.pool, room.tenant_id, room.session_id, None)
            except Exception:  # the updates stay pending and are retried next round
                log.exception("room persistence failed", session=str(room.session_id))
        if time.monotonic() - self._last_history >= self.settings.history_interval:
            self._last_history = time.monotonic()
            for room in list(self.rooms.values()):
                if room.changed_since_history:
                    await self._record_history(room, "interval")

    async def _persist(self, room: Room) -> None:
        """Write the room's local updates and the remote ones due; announce what was stored."""
        if not room.unsaved and not room.remote and not room.timeline_states:
            return
        now = time.monotonic()
        writes: Writes = room.take_writes(now, self.settings.store_grace)
        rows = writes.rows()
        if not rows and not writes.states:
            return
        try:
            await document.append(
                self.pool, room.tenant_id, room.session_id, rows, writes.timeline()
            )
        except BaseException:
            room.restore(writes)  # kept, in order, for the next try
            raise
        if time.monotonic() - room.others_seen < _OTHERS_TTL:
            for marker in writes.markers(room.origin):
                self.bus.publish(str(room.session_id), b"p", marker)
        room.updates_since_compaction += len(rows)
        if writes.remote:
            self.metrics.remote_stored.inc(len(writes.remote))
        self.metrics.persist_lag.observe(time.monotonic() - (writes.since or now))

    async def _say_hello(self) -> None:
        """Tell the other nodes (in each room's stream) that this node holds the room."""
        for session_id in list(self.rooms):
            self.bus.publish(str(session_id), b"h", b"")

    async def _record_history(self, room: Room, reason: str) -> None:
        if room.changed_since_history or reason == "end":
            room.changed_since_history = False
            await self._history_row(room.tenant_id, room.session_id, room.code(), reason)

    async def _history_row(self, tenant_id: UUID, session_id: UUID, code: str, reason: str) -> None:
        # PostgreSQL text cannot hold NUL, which a document may: kept visible, not refused.
        code = code.replace("\x00", "\ufffd")
        async with tenant_tx(self.pool, tenant_id) as conn:
            if reason != "end" and await dojos_db.last_history_code(conn, session_id) == code:
                return
            await dojos_db.add_history(conn, session_id, tenant_id, code, reason)

    # --- who is online ---------------------------------------------------------------------

    async def online(self, session_id: UUID) -> set[str]:
        return await online_users(self.redis, session_id)

    async def mark_online(self, session_id: UUID, member: str) -> None:
        """Record a socket as present; ``_refresh_online`` keeps it so while it stays."""
        self._online.setdefault(session_id, set()).add(member)
        with contextlib.suppress(*REDIS_DOWN):
            await self.redis.zadd(f"dojo:{session_id}:online", {member: time.time() + _ONLINE_TTL})

    async def claim_socket(self, session_id: UUID, user_id: UUID, peer_id: str, cap: int) -> bool:
        """Take one of a user's ``cap`` places for sockets in a session, across nodes.

        Atomic in Redis, so sockets opened at once cannot all pass; a place is held while
        its node refreshes it (``mark_offline`` frees it, a dead node's lapse). Redis being
        down lets the socket in: serving beats refusing.
        """
        now = time.time()
        try:
            claimed = await self._claim(
                keys=[_sockets_key(session_id, user_id)],
                args=[now, now + _ONLINE_TTL, cap, peer_id, int(_ONLINE_TTL * 2)],
            )
        except REDIS_DOWN:
            return True
        return bool(claimed)

    async def mark_offline(self, session_id: UUID, member: str) -> None:
        members = self._online.get(session_id)
        if members is not None:
            members.discard(member)
            if not members:
                del self._online[session_id]
        user, _, peer_id = member.partition(":")
        with contextlib.suppress(*REDIS_DOWN):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(f"dojo:{session_id}:online", member)
                pipe.zrem(_sockets_key(session_id, UUID(user)), peer_id)
                await pipe.execute()

    async def _refresh_online(self) -> None:
        """One pipelined refresh for every socket of this node (a node that dies stops
        refreshing, and its sockets drop out of "online" within ``_ONLINE_TTL``); and the
        streams' memory, for the metrics."""
        with contextlib.suppress(*REDIS_DOWN):
            self.metrics.stream_memory.set(await self.bus.stream_memory())
        if not self._online:
            return
        expires = time.time() + _ONLINE_TTL
        with contextlib.suppress(*REDIS_DOWN):
            async with self.redis.pipeline(transaction=False) as pipe:
                for session_id, members in self._online.items():
                    pipe.zadd(f"dojo:{session_id}:online", dict.fromkeys(members, expires))
                    for member in members:
                        user, _, peer_id = member.partition(":")
                        key = _sockets_key(session_id, UUID(user))
                        pipe.zadd(key, {peer_id: expires})
                        pipe.expire(key, int(_ONLINE_TTL * 2))
                await pipe.execute()


def _sockets_key(session_id: UUID, user_id: UUID) -> str:
    """A user's sockets in a session, on every node: peer id → when its place lapses."""
    return f"dojo:{session_id}:sockets:{user_id}"


async def online_users(redis: AnyRedis, session_id: UUID) -> set[str]:
    """User ids with a live socket on any node (members are ``user:socket``)."""
    try:
        members = await redis.zrangebyscore(f"dojo:{session_id}:online", time.time(), "+inf")
    except REDIS_DOWN:
        return set()
    return {m.decode().split(":", 1)[0] for m in members}


def _addressee(text: str) -> UUID | None:
    try:
        to = json.loads(text).get("to")
        return UUID(to) if to else None
    except (ValueError, AttributeError):
        return None
