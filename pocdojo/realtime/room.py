"""A dojo room on one node: the live Yjs document, its awareness, and the sockets attached here.

The room speaks the y-websocket protocol with pycrdt's message functions. It is written here
rather than on pycrdt-websocket's ``YRoom`` because a dojo needs what ``YRoom`` cannot give:
which socket an update came from (observers are read-only), updates from other nodes applied
without being echoed back but kept until they are known stored, per-socket limits that slow a
fast client down instead of cutting it off, and awareness of those present sent to a late
joiner at once. Each socket is a ``peer.Peer``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

import structlog
from pycrdt import (
    Awareness,
    Text,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    merge_updates,
    read_message,
    write_message,
)

from pocdojo.crdt import wire
from pocdojo.crdt.document import CODE, EMPTY_UPDATE, Document, TooManyTypes
from pocdojo.crdt.wire import Malformed
from pocdojo.realtime import frames
from pocdojo.realtime.bus import parse_range_tag, range_tag
from pocdojo.realtime.peer import CloseCode, Peer, SocketClosed, TokenBucket, ws_frame
from pocdojo.realtime.randori import Rotation

log = structlog.get_logger(__name__)

_SYNC_STEP2_PREFIX = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2])
_AWARENESS = bytes([YMessageType.AWARENESS])
_ARRIVALS = itertools.count()
# Past this many remote updates kept, or local bytes to write, a flush writes every remote
# update kept before its local ones rather than work out which they need.
_NEEDS_MAX_REMOTE = 512
_NEEDS_MAX_LOCAL_BYTES = 256 * 1024


@dataclass(eq=False)
class Remote:
    """An update another node accepted, kept here until it is known to be stored.

    ``origin`` names the room (on its node) that accepted it, which numbered what it carries
    ``first`` to ``last`` (one stream entry may merge several); whichever room stores it
    announces it by these numbers.
    """

    origin: str
    first: int
    last: int
    update: bytes
    arrived: float
    # The recording running when it arrived, and the wall-clock time then: it goes into that
    # recording's code timeline with the update, whichever node stores it.
    recording: UUID | None = None
    at: float = 0.0
    # Its place among the remote updates this process received, in the order they arrived.
    order: int = field(default_factory=lambda: next(_ARRIVALS))

    @functools.cached_property
    def footprint(self) -> wire.Footprint | None:
        """What it adds and needs (read once, when first asked); None if it cannot be read
        (accepted before the strict reader existed)."""
        try:
            return wire.footprint(self.update)
        except Malformed:
            return None


class Local(NamedTuple):
    """An update this room accepted from a socket (or made: a randori undo, a republish),
    numbered ``seq``; with the recording running then, its wall-clock time and author."""

    seq: int
    update: bytes
    recording: UUID | None = None
    at: float = 0.0
    author: UUID | None = None


class TimelineRow(NamedTuple):
    """A row of a recording's code timeline (see ``pocdojo.crdt.timeline``), as
    ``recordings_db.add_timeline`` takes it."""

    recording: UUID
    at: float  # wall-clock time
    data: bytes
    state: bool
    author: UUID | None


@dataclass
class Writes:
    """What one flush writes to the update log: remote updates due, then local ones; and the
    rows they add to a running recording's code timeline."""

    remote: list[Remote]
    local: list[Local]
    since: float | None
    states: list[TimelineRow] = field(default_factory=list)

    def rows(self) -> list[bytes]:
        return [r.update for r in self.remote] + [local.update for local in self.local]

    def timeline(self) -> list[TimelineRow]:
        """The timeline rows: this node's document states, then every update written that
        arrived while a recording ran (a duplicate of one another node also wrote is
        harmless: applying an update twice changes nothing)."""
        rows = list(self.states)
        rows += [
            TimelineRow(r.recording, r.at, r.update, False, None)
            for r in self.remote
            if r.recording is not None
        ]
        rows += [
            TimelineRow(u.recording, u.at, u.update, False, u.author)
            for u in self.local
            if u.recording is not None
        ]
        return rows

    def markers(self, origin: str) -> list[bytes]:
        """``origin:first:last`` for each run of numbers stored, ours and others'.

        A run spans only numbers that follow on: numbers this node never received (lost
        with a Redis that restarted) or holds back are not stored, so no run may cover them.
        """
        ranges = [(origin, local.seq, local.seq) for local in self.local]
        ranges += [(r.origin, r.first, r.last) for r in self.remote if r.origin]
        out: list[tuple[str, int, int]] = []
        for name, first, last in ranges:
            if out and out[-1][0] == name and out[-1][2] + 1 == first:
                out[-1] = (name, out[-1][1], last)
            else:
                out.append((name, first, last))
        return [range_tag(*run) for run in out]


class Room:
    """One session's live document on this node.

    Durability: every update this room accepts from a socket is numbered, published for the
    other nodes, and written by the next flush, which then announces the numbers it stored.
    Updates from other nodes are kept (``remote``) until announced stored. A flush that
    writes local updates writes before them the kept ones they need, so the log never holds
    an update without what it depends on; the others are written once they waited a grace
    period (their node died). Whichever room stores an update first,
    the others (its own room included) forget it when they read the announcement.
    """

    def __init__(
        self,
        session_id: UUID,
        tenant_id: UUID,
        doc: Document,
        *,
        publish: Callable[[bytes, bytes, bytes], None],
        max_document_bytes: int,
    ) -> None:
        self.session_id = session_id
        self.tenant_id = tenant_id
        self.document = doc
        self.doc = doc.doc
        self.awareness = Awareness(self.doc)
        # A socket owns the awareness ids it introduced (as in the reference y-websocket
        # server): clients relay others' states too, and leaving must remove only their own.
        # A function, not a method: the room holds its awareness, so a method would make a
        # reference cycle, and the room would outlive its unloading until a full collection.
        self.awareness.observe(_claim_awareness)
        self.doc_peers: set[Peer] = set()
        # Randori: the rotation, and its pilot, whose edits alone are let through.
        self.randori: Rotation | None = None
        self.pilot: UUID | None = None
        self.event_peers: set[Peer] = set()
        # Limits per user (shared by the user's sockets here): updates, signals, chat times.
        self.buckets: dict[UUID, TokenBucket] = {}
        self.signal_buckets: dict[UUID, TokenBucket] = {}
        self.chat_times: dict[UUID, list[float]] = {}
        self.origin = uuid.uuid4().hex[:12]
        self.seq = 0
        self.unsaved: list[Local] = []  # in the order accepted
        self.unsaved_since: float | None = None
        self.remote: list[Remote] = []
        self.others_seen = -math.inf  # when another node was last heard from in this room
        self.updates_since_compaction = 0
        self.changed_since_history = False
        self.size = len(self.doc.get_update())
        self.max_document_bytes = max_document_bytes
        self._publish = publish
        self.idle_task: asyncio.Task[None] | None = None
        self.unload_failures = 0  # unloads that failed in a row (PostgreSQL unreachable)
        self.on_update: Callable[[int], None] | None = None
        self.on_sent: Callable[[int, float | None], None] | None = None
        # pycrdt panicked on its document: the room is being dropped (``Rooms.drop_poisoned``).
        self.poisoned = False
        # The recording running (every update accepted meanwhile joins its code timeline),
        # and this node's document states waiting for the next flush to join it.
        self.recording: UUID | None = None
        self.timeline_states: list[TimelineRow] = []

    @property
    def empty(self) -> bool:
        return not self.doc_peers and not self.event_peers

    def bucket_for(self, user_id: UUID, rate: float, burst: int) -> TokenBucket:
        """The token bucket shared by a user's sockets in this room on this node."""
        bucket = self.buckets.get(user_id)
        if bucket is None:
            bucket = self.buckets[user_id] = TokenBucket(rate, burst)
        return bucket

    def forget_user(self, user_id: UUID) -> None:
        """A socket of ``user_id`` left: drop its shared limits once none is left."""
        if not any(p.user_id == user_id for p in self.doc_peers | self.event_peers):
            self.buckets.pop(user_id, None)
            self.signal_buckets.pop(user_id, None)
            self.chat_times.pop(user_id, None)

    # --- document sockets ------------------------------------------------------------------

    def attach(self, peer: Peer) -> None:
        """Start serving a document socket: our state vector, then who is here."""
        self.doc_peers.add(peer)
        peer.resync = lambda: create_update_message(self.document.encode())
        peer.send(create_sync_message(self.doc))
        if self.awareness.states:
            ids = list(self.awareness.states)
            peer.send(create_awareness_message(self.awareness.encode_awareness_update(ids)))

    def detach(self, peer: Peer) -> None:
        """Stop serving a socket, and tell the others its awareness states are gone."""
        self.doc_peers.discard(peer)
        if peer.awareness_ids:
            gone = [i for i in peer.awareness_ids if i in self.awareness.states]
            if gone:
                self.awareness.remove_awareness_states(gone, origin=peer)
                # The removal encodes each id with a null state; receivers drop them.
                message = create_awareness_message(_removal(self.awareness, gone))
                self._fan_out(message, exclude=None)
                self._publish(b"a", message, b"")

    def receive(self, peer: Peer, message: bytes) -> None:
        """Handle one binary message from a document socket.

        An update past the socket's rate is put in its backlog (``apply_deferred`` applies it
        once the bucket allows); the socket's reader then reads no faster than that.

        Raises:
            SocketClosed: the message is malformed or breaks a limit.
        """
        received_at = time.perf_counter()
        if message[:1] == _AWARENESS and len(message) > peer.limits.max_awareness_bytes:
            raise SocketClosed(CloseCode.TOO_LARGE, "awareness message too large")
        # Read whole before anything of it is applied: a frame is taken or refused entire.
        try:
            parsed = frames.parse(message)
        except Malformed as exc:
            raise SocketClosed(CloseCode.MALFORMED, f"malformed message: {exc}") from exc
        if isinstance(parsed, frames.SyncStep1):
            # Answers cost a token as updates do: a client asking again and again is slowed
            # down, and its answers wait as one (the latest), never one copy per request.
            if peer.deferred or not peer.take_update_token():
                peer.deferred_sync = parsed.state
            else:
                self._answer_sync(peer, parsed.state)
        elif isinstance(parsed, frames.SyncUpdate):
            self._receive_update(peer, parsed.update, received_at)
        elif isinstance(parsed, frames.AwarenessUpdate):
            if peer.deferred or not peer.take_update_token():
                # Only the latest state counts: one waiting replaces the one before.
                peer.deferred_awareness_update = message
            else:
                self._relay_awareness(peer, message, received_at)
        elif isinstance(parsed, frames.QueryAwareness):
            if peer.deferred or not peer.take_update_token():
                peer.deferred_awareness = True
            else:
                self._answer_awareness(peer)
        # An auth message needs no answer: the token was checked at connect time.

    def _receive_update(self, peer: Peer, update: bytes, received_at: float) -> None:
        if peer.readonly or update == EMPTY_UPDATE:
            return  # observers' edits are dropped here and reach no one
        if peer.deferred or not peer.take_update_token():
            peer.backlog.append(update)
            peer.backlog_bytes += len(update)
            return
        try:
            self._apply(peer, update, received_at)
        except ValueError as exc:  # read alike by pycrdt and Yjs, and yet not integrable
            raise SocketClosed(CloseCode.MALFORMED, "malformed update") from exc

    def _answer_sync(self, peer: Peer, state: bytes) -> None:
        # Held updates go too, as Yjs answers: a client that synced before their dependency
        # arrived would otherwise never receive them. Built when sent, from the document as
        # it is then.
        peer.send_later(
            "sync", lambda: _SYNC_STEP2_PREFIX + write_message(self.document.encode(state))
        )

    def _answer_awareness(self, peer: Peer) -> None:
        peer.send_later(
            "awareness",
            lambda: create_awareness_message(
                self.awareness.encode_awareness_update(list(self.awareness.states))
            ),
        )

    def apply_deferred(self, peer: Peer) -> None:
        """Do what waited for the socket's rate, as one (the caller took a token for it): the
        backlog applied as one update, then the latest sync step 1 and awareness query
        answered.

        Raises:
            SocketClosed: an update is malformed or the document would grow past its limit.
        """
        self._apply_backlog(peer)
        if peer.deferred_awareness_update is not None:
            message, peer.deferred_awareness_update = peer.deferred_awareness_update, None
            self._relay_awareness(peer, message, time.perf_counter())
        if peer.deferred_sync is not None:
            state, peer.deferred_sync = peer.deferred_sync, None
            self._answer_sync(peer, state)
        if peer.deferred_awareness:
            peer.deferred_awareness = False
            self._answer_awareness(peer)

    def _apply_backlog(self, peer: Peer) -> None:
        backlog, peer.backlog, peer.backlog_bytes = peer.backlog, [], 0
        if not backlog:
            return
        received_at = time.perf_counter()
        try:
            merged = backlog[0] if len(backlog) == 1 else merge_updates(*backlog)
        except ValueError:
            merged = None  # one of them is malformed: apply them one by one to find it
        try:
            if merged is not None:
                self._apply(peer, merged, received_at)
                return
            for update in backlog:
                self._apply(peer, update, received_at)
        except SocketClosed:
            raise
        except ValueError as exc:
            raise SocketClosed(CloseCode.MALFORMED, "malformed update") from exc

    def _apply(self, peer: Peer, update: bytes, received_at: float) -> None:
        if self.size + len(update) > self.max_document_bytes:
            # ``size`` only adds up updates (deletions included), so it overestimates; measure
            # the real encoded size before refusing.
            self.size = len(self.doc.get_update())
            if self.size + len(update) > self.max_document_bytes:
                raise SocketClosed(CloseCode.TOO_LARGE, "the document would exceed its size limit")
        try:
            self.document.admit(update)
        except TooManyTypes as exc:
            raise SocketClosed(CloseCode.MALFORMED, str(exc)) from exc
        # Every update is passed on, even one that adds nothing to the state vector: a
        # deletion changes only the delete set. Duplicates are harmless to every receiver.
        if self.pilot is not None and peer.user_id != self.pilot:
            self._apply_reverted(peer, update, received_at)
            return
        self.document.apply(update)
        self._accepted(peer, update, received_at)

    def _accepted(self, peer: Peer | None, update: bytes, received_at: float | None) -> None:
        """An update now in the document: count it, pass it on, store it."""
        self.size += len(update)
        self.changed_since_history = True
        self._fan_out(create_update_message(update), exclude=peer, received_at=received_at)
        self._log(update, None if peer is None else peer.user_id)
        if self.on_update is not None:
            self.on_update(len(update))

    def _apply_reverted(self, peer: Peer, update: bytes, received_at: float) -> None:
        """Randori: someone not at the keyboard typed. Their edit is taken and undone at once
        by the server, both passed on and stored: nothing of it shows, their own editor goes
        back to the shared text, and their client's edits stay numbered without a gap (an
        edit dropped instead would make every later one of that client wait forever for it).
        What they deleted comes back as new text; changes outside the code are kept."""
        code = self.doc.get(CODE, type=Text)
        before = str(code).encode()
        deltas: list[list[dict[str, Any]]] = []
        watch = code.observe(lambda event: deltas.append(event.delta))
        try:
            self.document.apply(update)
        finally:
            code.unobserve(watch)
        self._accepted(peer, update, received_at)
        if not deltas:
            return
        undo: list[bytes] = []
        watch_doc = self.doc.observe(lambda event: undo.append(event.update))
        try:
            with self.doc.transaction():
                for delta in deltas:
                    _invert(code, delta, before)
        finally:
            self.doc.unobserve(watch_doc)
        for revert in undo:
            if revert != EMPTY_UPDATE:
                self._accepted(None, revert, None)

    def _log(self, update: bytes, author: UUID | None = None) -> None:
        """Number an update, publish it for the other nodes, and keep it for the next flush."""
        self.seq += 1
        self._publish(b"u", update, range_tag(self.origin, self.seq, self.seq))
        if not self.unsaved:
            self.unsaved_since = time.monotonic()
        self.unsaved.append(Local(self.seq, update, self.recording, time.time(), author))

    def recording_changed(self, recording: UUID | None) -> None:
        """A recording started (``recording``) or stopped (None). A start adds this node's
        document as it stands to the recording's code timeline: what this room holds that
        no update of the recording will carry (not yet stored, or from before)."""
        if recording is not None and recording != self.recording:
            state = TimelineRow(recording, time.time(), self.document.encode(), True, None)
            self.timeline_states.append(state)
        self.recording = recording

    def _relay_awareness(self, peer: Peer, message: bytes, received_at: float) -> None:
        """Apply and pass on the states a socket may set: those of the clients it introduced,
        or of clients nobody here has. Stock clients relay everyone's states they hold, so
        the others' are left out silently, not refused: no socket sets or clears another
        one's cursor or name."""
        payload = read_message(message[1:])
        entries = frames.awareness_entries(payload)
        own = [e for e in entries if self._may_set(peer, e.client)]
        if not own:
            return
        if len(own) < len(entries):
            payload = frames.awareness_update(own)
            message = create_awareness_message(payload)
        self.awareness.apply_awareness_update(payload, origin=peer)
        self._fan_out(message, exclude=peer, received_at=received_at)
        self._publish(b"a", message, b"")

    def _may_set(self, peer: Peer, client: int) -> bool:
        return client in peer.awareness_ids or client not in self.awareness.states

    def _fan_out(
        self, message: bytes, *, exclude: Peer | None, received_at: float | None = None
    ) -> None:
        frame = ws_frame(message)
        written = 0
        for other in self.doc_peers:
            if other is not exclude:
                written += other.send(message, received_at, frame=frame)
        if written and self.on_sent is not None:
            # Written synchronously to every fast-path socket: one latency stands for all.
            latency = None if received_at is None else time.perf_counter() - received_at
            self.on_sent(written, latency)

    # --- from other nodes ------------------------------------------------------------------

    def apply_remote_update(self, update: bytes, tag: bytes) -> None:
        """An update another node accepted: apply and fan out; keep it until it is stored."""
        self.document.apply(update)
        self.size += len(update)
        self.changed_since_history = True
        self._fan_out(create_update_message(update), exclude=None)
        try:
            origin, first, last = parse_range_tag(tag)
        except ValueError:  # untagged: stored by whoever has it, never announced
            origin, first, last = "", 0, 0
        self.remote.append(
            Remote(origin, first, last, update, time.monotonic(), self.recording, time.time())
        )

    def stored(self, marker: bytes) -> None:
        """Another node stored the updates ``origin:first:last``: forget our copies (ours
        too, if it stored updates this room accepted)."""
        origin, low, high = parse_range_tag(marker)
        if origin == self.origin:
            self.unsaved = [u for u in self.unsaved if not low <= u.seq <= high]
            if not self.unsaved:
                self.unsaved_since = None
            return
        self.remote = [
            r for r in self.remote if not (r.origin == origin and low <= r.first <= r.last <= high)
        ]

    def apply_remote_awareness(self, message: bytes) -> None:
        """Awareness relayed by another node."""
        self.awareness.apply_awareness_update(read_message(message[1:]), origin="remote")
        self._fan_out(message, exclude=None)

    def merge_state(self, state: bytes) -> None:
        """Merge a whole document state (reload after a gap); new parts reach local sockets."""
        diff_base = self.doc.get_state()
        self.document.apply(state)
        missing = self.document.encode(diff_base)
        if missing != EMPTY_UPDATE:
            self.changed_since_history = True
            self._fan_out(create_update_message(missing), exclude=None)

    def republish(self) -> None:
        """Publish (and store) the whole state: other nodes missed what we published."""
        self._log(self.document.encode())

    def code(self) -> str:
        return self.document.code()

    # --- persistence -----------------------------------------------------------------------

    def take_writes(self, now: float, grace: float) -> Writes:
        """What the next flush writes, in an order any Yjs reads the same way.

        With local updates to write, the remote updates not yet announced stored that they
        need go first: those adding an id a local update refers to (an item it inserts
        beside, the item holding its parent, one it deletes, its client's earlier clocks),
        then those these need in turn. A log holding an update without what it needs reads
        differently in Yjs (which holds it back) and pycrdt (which applies that client's later
        updates past the gap). The other remote updates are left to their own node, which
        writes and announces them; as without local updates, those that waited ``grace``
        seconds (their node died) go too, the oldest first.

        A remote update all of which still waits for a dependency this node lacks (lost from
        the stream when Redis restarted, say) stays: written now, the log would hold it
        without what it depends on until its own node stores that. Nothing local depends on
        it (no client could build on what is not integrated); it goes once its dependency
        arrives. One that brought anything integrated goes when due: a local update may
        depend on that part.
        """
        local, self.unsaved = self.unsaved, []
        since, self.unsaved_since = self.unsaved_since, None
        states, self.timeline_states = self.timeline_states, []
        if not self.remote:
            return Writes([], local, since, states)
        ready = 0
        while ready < len(self.remote) and self.remote[ready].arrived <= now - grace:
            ready += 1
        if local:
            due, self.remote = _needed(local, self.remote, ready)
        else:
            due, self.remote = self.remote[:ready], self.remote[ready:]
        if due and self.document.held is not None:
            waiting = [r for r in due if self.document.waits(r.update)]
            if waiting:
                due = [r for r in due if r not in waiting]
                self.remote = _in_order(self.remote, waiting)
        if due:
            since = due[0].arrived if since is None else min(since, due[0].arrived)
        return Writes(due, local, since, states)

    def restore(self, writes: Writes) -> None:
        """A flush failed: keep what it took, in order, for the next try."""
        self.unsaved[:0] = writes.local
        if writes.local:
            self.unsaved_since = writes.since
        self.remote = _in_order(writes.remote, self.remote)
        self.timeline_states[:0] = writes.states

    # --- event sockets ---------------------------------------------------------------------

    def broadcast_event(self, text: str, *, to_user: UUID | None = None) -> None:
        """Deliver a JSON event to this node's event sockets (all, or one user's: a signal is
        for the page in the call, so the socket in it if it is here; else those whose call
        another socket did not take over)."""
        peers = self.event_peers
        if to_user is not None:
            peers = {p for p in peers if p.user_id == to_user}
            in_call = {p for p in peers if p.in_voice}
            peers = in_call or {p for p in peers if not p.voice_elsewhere}
        for peer in peers:
            peer.send(text)

    def voice_taken_over(self, user_id: UUID, connection: str) -> bool:
        """``user_id`` is in the call from the socket ``connection`` now: their other sockets
        here are not. Whether one of them was."""
        was = False
        for peer in self.event_peers:
            if peer.user_id == user_id and peer.peer_id != connection and peer.in_voice:
                peer.in_voice, peer.voice_elsewhere, was = False, True, True
        return was

    def set_pilot(self, pilot: UUID | None) -> None:
        """Randori's turn changed (None: randori is off): from now on only ``pilot``'s edits
        stay; the others' are undone as they arrive (``_apply_reverted``)."""
        self.pilot = pilot

    def change_role(self, user_id: UUID, role: str) -> None:
        """A user has a new role, taken by their sockets here at once (an observer's edits
        are dropped from now on); everyone's events sockets, on every node, hear of it.

        A document socket that may write again is sent our state vector: the client answers
        with what we lack, the edits it made while read-only included. Without that, every
        later edit of its client would wait forever for the dropped ones (Yjs numbers a
        client's edits without gaps).
        """
        for peer in self.doc_peers | self.event_peers:
            if peer.user_id != user_id:
                continue
            was_readonly, peer.role = peer.readonly, role
            if was_readonly and not peer.readonly and peer in self.doc_peers:
                peer.send(create_sync_message(self.doc))
        event = json.dumps({"type": "role", "userId": str(user_id), "role": role})
        self.broadcast_event(event)
        self._publish(b"e", event.encode(), b"")

    async def close_all(self, code: int, reason: str) -> None:
        """Close every socket at once; none can hold up the others."""
        peers = list(self.doc_peers | self.event_peers)
        await asyncio.gather(*(peer.close(code, reason) for peer in peers))


def _invert(code: Text, delta: list[dict[str, Any]], before: bytes) -> None:
    """Undo a change to ``code`` (``delta`` from its text ``before``, in UTF-8 offsets as
    pycrdt counts): delete what it inserted, insert again what it deleted."""
    at = old = 0
    for op in delta:
        if "retain" in op:
            at += op["retain"]
            old += op["retain"]
        elif "insert" in op and isinstance(op["insert"], str):
            size = len(op["insert"].encode())
            del code[at : at + size]
        elif "delete" in op:
            size = op["delete"]
            code.insert(at, before[old : old + size].decode())
            at += size
            old += size


def _claim_awareness(topic: str, change: tuple[dict[str, list[int]], Any]) -> None:
    ids, origin = change
    if topic == "update" and isinstance(origin, Peer):
        origin.awareness_ids.update(ids["added"])
        origin.awareness_ids.difference_update(ids["removed"])


def _removal(awareness: Awareness, client_ids: list[int]) -> bytes:
    return frames.awareness_update(
        [
            frames.AwarenessEntry(i, awareness.meta.get(i, {}).get("clock", 0), "null")
            for i in client_ids
        ]
    )


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a panic of Rust code (pycrdt's): pyo3's ``PanicException``, which
    cannot be imported by name."""
    return any(
        cls.__name__ == "PanicException" and cls.__module__ == "pyo3_runtime"
        for cls in type(exc).__mro__
    )


def _in_order(*lists: list[Remote]) -> list[Remote]:
    """The remote updates of ``lists`` in the order they arrived."""
    return sorted(itertools.chain(*lists), key=lambda r: r.order)


def _needed(
    local: list[Local], remote: list[Remote], aged: int
) -> tuple[list[Remote], list[Remote]]:
    """Which of ``remote`` (in arrival order; the first ``aged`` waited the grace period) go
    before ``local`` in the log, and which stay: see ``Room.take_writes``."""
    if (
        len(remote) > _NEEDS_MAX_REMOTE
        or sum(len(u.update) for u in local) > _NEEDS_MAX_LOCAL_BYTES
    ):
        return remote, []
    known = [r.footprint for r in remote if r.footprint is not None]
    if len(known) < len(remote):
        return remote, []
    taken = [i < aged for i in range(len(remote))]
    wanted: list[wire.Range] = [n for p in known[:aged] for n in p.needs]
    for update in local:
        try:
            wanted += wire.footprint(update.update).needs
        except Malformed:  # not read alike by every Yjs: accepted before the strict reader
            return remote, []
    while wanted:
        found: list[wire.Range] = []
        for i, p in enumerate(known):
            if not taken[i] and p.needed_by(wanted):
                taken[i] = True
                found += p.needs
        wanted = found
    due = [r for i, r in enumerate(remote) if taken[i]]
    kept = [r for i, r in enumerate(remote) if not taken[i]]
    return due, kept
