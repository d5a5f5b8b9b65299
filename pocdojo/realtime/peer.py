"""A socket attached to a dojo room: its close codes, limits, outgoing queue and writer.

Sending takes a fast path when it can (the frame written to the transport at once); otherwise
it goes through the peer's bounded queue, drained by its own writer task, so fanning an update
out never waits on a slow client. A document socket that falls too far behind is caught up
with the whole state; an events socket is closed with 4008, which clients retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiohttp import WSMessage, web

from pocdojo.core.db.dojos import Admission
from pocdojo.core.errors import Forbidden, Gone, NotFound, Unauthorized


@dataclass(frozen=True)
class _Later:
    """Queue marker: a message built when the writer gets to it, from the latest request of
    its kind (a later request replaces the earlier one instead of queueing a second copy)."""

    kind: str


RESYNC = "resync"  # the whole document state, in place of what was dropped


class CloseCode:
    """WebSocket close codes of the dojo sockets (documented in docs/realtime.md).

    The stock y-websocket client never reconnects after a code in 4400-4499, so those are
    kept for what no reconnect can fix; transient conditions use codes it retries.
    """

    GOING_AWAY = 1001  # retried: the node is shutting down
    INTERNAL_ERROR = 1011  # retried: a fault of the server's, logged
    TRY_AGAIN_LATER = 1013  # retried: the room could not be loaded (database unreachable)
    SLOW_READER = 4008  # retried: an events socket fell too far behind reading
    TOO_MANY_SOCKETS = 4029  # retried: the user has as many sockets open as allowed
    MALFORMED = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    ENDED = 4410
    TOO_LARGE = 4413


# Why a socket is refused or closed, and the code the client gets.
REFUSALS = (Unauthorized, Forbidden, NotFound, Gone)
REFUSAL_CODES = {
    Unauthorized.status: CloseCode.UNAUTHORIZED,
    Forbidden.status: CloseCode.FORBIDDEN,
    NotFound.status: CloseCode.NOT_FOUND,
    Gone.status: CloseCode.ENDED,
}


def role_in_session(found: Admission | None) -> str:
    """The role a user has in a dojo session now: at connect time, and again whenever the
    user's access changes while the socket is open.

    Raises:
        Unauthorized, Forbidden, NotFound, Gone: the user may not be there (``REFUSALS``).
    """
    if found is None:
        raise NotFound("session not found")
    if found.status == "ended":
        raise Gone("the session has ended", code="session_ended")
    if found.role is None or found.username is None or not found.user_active:
        raise Forbidden("not a participant of this session", code="not_participant")
    if not found.login_live:
        raise Unauthorized("the login session has ended; log in again", code="session_revoked")
    return "observer" if found.user_role == "viewer" else found.role


class SocketClosed(Exception):
    """Raised inside a room to close one socket with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    max_document_bytes: int
    updates_per_second: float
    burst: int
    queue_size: int = 1024
    # Bytes a socket's queue may hold: past it, a document socket's queue is replaced by the
    # whole state and an events socket is closed (4008).
    queue_bytes: int = 4 * 1024 * 1024
    max_awareness_bytes: int = 64 * 1024


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up.

    One per user and room on a node, shared by that user's sockets there: opening more
    sockets does not multiply what a user may send.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._refilled = time.monotonic()

    def take(self) -> bool:
        """Take a token if there is one."""
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait(self) -> float:
        """Seconds until the bucket holds a token (0 if it does)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now


# Unwritten bytes a socket may hold in its transport before sends go through its queue
# (where a slow reader is caught up by state instead of growing memory).
DIRECT_WRITE_LIMIT = 64 * 1024


async def close_socket(
    ws: web.WebSocketResponse, transport: asyncio.Transport | None, code: int, reason: str
) -> None:
    """Close ``ws`` with ``code``; a client that does not answer within 2 s is cut off."""
    try:
        async with asyncio.timeout(2.0):
            await ws.close(code=code, message=reason.encode()[:120])
    except TimeoutError:
        if transport is not None:
            transport.abort()


def ws_frame(payload: bytes | str) -> bytes:
    """One unmasked, uncompressed WebSocket frame (RFC 6455 section 5.2), as a server sends.

    A message fanned out to many sockets is framed once and written to each transport as is.
    """
    if isinstance(payload, str):
        data, opcode = payload.encode(), 0x81
    else:
        data, opcode = payload, 0x82
    size = len(data)
    if size < 126:
        return bytes((opcode, size)) + data
    if size < 1 << 16:
        return bytes((opcode, 126)) + size.to_bytes(2, "big") + data
    return bytes((opcode, 127)) + size.to_bytes(8, "big") + data


@dataclass(eq=False)
class Peer:
    """One socket attached to a room on this node.

    Sending takes a fast path when it can: with nothing queued and the transport's buffer
    small, the frame is written to the transport at once (a system call, no task switch).
    Otherwise it goes through the peer's queue and writer task, which waits for the client.
    """

    ws: web.WebSocketResponse
    user_id: UUID
    username: str
    role: str
    limits: Limits
    login_session_id: UUID | None = None  # what the socket's token was issued under
    in_voice: bool = False  # an events socket that put its user in the voice call
    voice_elsewhere: bool = False  # ... whose call another socket of the user took over
    peer_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    awareness_ids: set[int] = field(default_factory=set)
    _queue: asyncio.Queue[tuple[bytes | str | _Later, float]] = field(init=False)
    _queued_bytes: int = 0
    overflows: int = 0  # times the queue was replaced by the whole state (or the socket closed)
    _later: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    _writer: asyncio.Task[None] | None = None
    # Updates, sync requests and awareness; by default the socket's own, else its user's.
    bucket: TokenBucket | None = None
    on_sent: Callable[[int, float | None], None] | None = None
    # Builds the catch-up message for a document socket whose queue overflowed.
    resync: Callable[[], bytes] | None = None
    transport: asyncio.Transport | None = None
    _held: list[bytes | str] | None = None
    _busy: bool = False  # the writer task is between taking a message and having sent it
    # Updates received past the rate limit, applied as one once the bucket allows.
    backlog: list[bytes] = field(default_factory=list)
    backlog_bytes: int = 0
    # A sync step 1 or an awareness query past the rate, answered with the backlog.
    deferred_sync: bytes | None = None
    deferred_awareness: bool = False
    deferred_awareness_update: bytes | None = None  # the latest one; earlier ones are stale
    # The task reading the socket; a close asked by another task is done by that one.
    reader: asyncio.Task[Any] | None = None
    close_request: tuple[int, str] | None = None
    _receiving: bool = False
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.limits.queue_size)
        if self.bucket is None:
            self.bucket = TokenBucket(self.limits.updates_per_second, self.limits.burst)

    @property
    def queued_bytes(self) -> int:
        """Bytes of the messages waiting in the queue (answers built when sent not counted)."""
        return self._queued_bytes

    @property
    def deferred(self) -> bool:
        """Whether anything waits for the rate to allow it."""
        return (
            bool(self.backlog)
            or self.deferred_sync is not None
            or self.deferred_awareness
            or self.deferred_awareness_update is not None
        )

    @property
    def readonly(self) -> bool:
        return self.role == "observer"

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"peer-{self.peer_id}")

    async def stop(self) -> None:
        self._done.set()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def send(
        self,
        message: bytes | str,
        received_at: float | None = None,
        *,
        held: bool = True,
        frame: bytes | None = None,
    ) -> int:
        """Send a message: written at once when possible, else queued for the writer task.

        Returns the bytes written at once (0 when queued, held or dropped); the caller counts
        those in the metrics, the writer task counts the rest.

        While the peer is on hold, messages wait (unless ``held`` is False). When a document
        socket's queue fills (a burst faster than the client reads), the
        queued messages are dropped for one message holding the whole document state, which
        the client merges as any update: memory stays bounded and nothing is lost. An events
        socket cannot be caught up that way, so it is closed with 4008 (clients reconnect).
        """
        if self.ws.closed:
            return 0
        if self._held is not None and held:
            self._held.append(message)
            return 0
        if self._direct():
            data = frame if frame is not None else ws_frame(message)
            assert self.transport is not None
            self.transport.write(data)
            # A fan-out (given its frame) is counted by the room, once for the whole batch.
            if frame is None and self.on_sent is not None:
                self.on_sent(
                    len(data), None if received_at is None else time.perf_counter() - received_at
                )
            return len(data)
        size = len(message)
        if self._queue.full() or self._queued_bytes + size > self.limits.queue_bytes:
            self._overflow()
            return 0
        self._queue.put_nowait((message, received_at or time.perf_counter()))
        self._queued_bytes += size
        return 0

    def send_later(self, kind: str, build: Callable[[], bytes]) -> None:
        """Send what ``build`` makes, built when it is sent: at once if possible, else when
        the writer gets to it. A request of a kind already queued replaces it, so a client
        that asks again and again without reading holds one answer, not one per request."""
        if self.ws.closed:
            return
        if kind in self._later:
            self._later[kind] = build
            return
        if self._direct():
            data = ws_frame(build())
            assert self.transport is not None
            self.transport.write(data)
            if self.on_sent is not None:
                self.on_sent(len(data), None)
            return
        if self._queue.full():
            self._overflow()
            if self.ws.closed or self.resync is None:
                return
        self._later[kind] = build
        self._queue.put_nowait((_Later(kind), time.perf_counter()))

    def _direct(self) -> bool:
        """Whether a frame can be written to the transport at once (nothing queued before it,
        and the transport's own buffer small)."""
        transport = self.transport
        return (
            transport is not None
            and not self._busy
            and self._queue.empty()
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= DIRECT_WRITE_LIMIT
        )

    def _overflow(self) -> None:
        """The queue is full (in messages or bytes): a document socket's queue is replaced by
        the whole state (which also answers any sync step 1 waiting in it); an events socket
        is closed (4008), since events cannot be caught up that way."""
        self.overflows += 1
        if self.resync is None:
            asyncio.get_running_loop().create_task(
                self.close(CloseCode.SLOW_READER, "client too slow to keep up")
            )
            return
        kept = {k: v for k, v in self._later.items() if k not in ("sync", RESYNC)}
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        self._queued_bytes = 0
        self._later = {RESYNC: self.resync, **kept}
        for kind in self._later:
            self._queue.put_nowait((_Later(kind), time.perf_counter()))

    def hold(self) -> None:
        """Keep what is sent from now on until ``release`` (while a welcome is built)."""
        self._held = []

    def release(self, skip: Callable[[bytes | str], bool]) -> None:
        """Send what was held, in order, except messages ``skip`` says the client has."""
        held, self._held = self._held or [], None
        for message in held:
            if not skip(message):
                self.send(message)

    async def receive(self, within: float | None = None) -> WSMessage | None:
        """The next message (the reader task's only way to read); None once a close was asked.

        Raises:
            TimeoutError: nothing came ``within`` that many seconds.
        """
        if self.close_request is not None:
            return None
        self._receiving = True
        try:
            return await self.ws.receive(within)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.close_request is not None and task is not None and task.uncancel() == 0:
                return None  # woken by ``close`` from another task
            raise
        finally:
            self._receiving = False

    async def close(self, code: int, reason: str, *, drain: bool = False) -> None:
        """Close the socket, after sending what is queued if ``drain`` (up to a second).

        Asked from another task, the close is left to the reader task, woken for it: aiohttp
        waits for the client's close frame only when the task that reads closes, and closing
        with the client's last messages unread would reset the connection, losing our close
        frame. A client that stopped reading cannot hold the close up: after a few seconds the
        connection is dropped.
        """
        if self.ws.closed:
            return
        reader = self.reader
        if reader is not None and not reader.done() and reader is not asyncio.current_task():
            if self.close_request is None:
                self.close_request = (code, reason)
                if self._receiving:
                    reader.cancel()
            try:
                async with asyncio.timeout(3.0):
                    await self._done.wait()
            except TimeoutError:
                if self.transport is not None:
                    self.transport.abort()
            return
        try:
            await self._close(code, reason, drain=drain)
        finally:
            self._done.set()

    async def _close(self, code: int, reason: str, *, drain: bool) -> None:
        if drain and self._writer is not None and not self._writer.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._queue.join()
        await close_socket(self.ws, self.transport, code, reason)

    def take_update_token(self) -> bool:
        """A token for an update, a sync request or an awareness message."""
        assert self.bucket is not None
        return self.bucket.take()

    def token_wait(self) -> float:
        """Seconds until the bucket holds a token (0 if it does)."""
        assert self.bucket is not None
        return self.bucket.wait()

    async def _write_loop(self) -> None:
        while True:
            self._busy = False
            queued, received_at = await self._queue.get()
            self._busy = True
            if isinstance(queued, _Later):
                build = self._later.pop(queued.kind, None)
                if build is None:
                    self._queue.task_done()
                    continue
                message: bytes | str = build()
            else:
                message = queued
                self._queued_bytes -= len(message)
            try:
                if isinstance(message, bytes):
                    await self.ws.send_bytes(message)
                else:
                    await self.ws.send_str(message)
            except (ConnectionError, RuntimeError):
                return  # the socket is gone; its reader notices and detaches
            finally:
                self._queue.task_done()
            if self.on_sent is not None:
                self.on_sent(len(message), time.perf_counter() - received_at)
