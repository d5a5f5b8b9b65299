"""The dojo sockets: ``…/doc`` (the y-websocket protocol) and ``…/events`` (JSON).

Both take the participant token from the ``token`` query parameter (browsers cannot set
headers on a WebSocket), upgrade, and then refuse with a close code if the token or the
session does not allow the connection, so every client learns why. Close codes are listed in
``peer.CloseCode`` and in docs/realtime.md. A plain GET, which cannot be upgraded, is answered
over HTTP with the status the close code stands for instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NoReturn
from uuid import UUID

import asyncpg
import structlog
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from pocdojo.core import appkeys
from pocdojo.core.api import Routes
from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from pocdojo.core.security import DojoClaims
from pocdojo.crdt.wire import Malformed
from pocdojo.realtime import frames, voice
from pocdojo.realtime.peer import (
    REFUSAL_CODES,
    REFUSALS,
    CloseCode,
    Limits,
    Peer,
    SocketClosed,
    TokenBucket,
    close_socket,
    role_in_session,
)
from pocdojo.realtime.recorder import RECORDER, RecorderError
from pocdojo.realtime.room import Room, is_panic
from pocdojo.realtime.rooms import Rooms, online_users

log = structlog.get_logger(__name__)

rooms_key = web.AppKey("rooms", Rooms)
routes = Routes(tag="dojos")

_HEARTBEAT = 15.0
# Messages that end a socket's reading: the close handshake, a closed socket, an error.
_FINAL = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
# What asyncpg raises while PostgreSQL is down or restarting.
_DATABASE_DOWN = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.InterfaceError,  # the connection went away
)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatIn(_Message):
    type: Literal["chat"]
    text: Annotated[str, Field(min_length=1, max_length=4000)]


class SignalIn(_Message):
    type: Literal["signal"]
    to: Literal["recorder"] | UUID
    kind: Literal["offer", "answer", "candidate", "bye"]
    data: dict[str, Any] | list[Any] | str | None = None


class RecordingIn(_Message):
    type: Literal["recording"]
    action: Literal["start", "stop"]


class RandoriIn(_Message):
    type: Literal["randori"]
    action: Literal["start", "stop"]
    period_seconds: Annotated[int, Field(ge=1, le=3600, alias="periodSeconds")] = 300


class VoiceIn(_Message):
    """A client's voice state; ``speaking`` as its own voice activity detection says."""

    type: Literal["voice"]
    in_voice: bool = Field(alias="inVoice")
    muted: bool = False
    speaking: bool = False
    # Back in the call from a socket whose call another socket of the user took over (a
    # page joining again); without it, such a socket's updates are late ones, refused.
    take_over: bool = Field(False, alias="takeOver")


class PingIn(_Message):
    type: Literal["ping"]


EventIn = Annotated[
    ChatIn | SignalIn | RecordingIn | RandoriIn | VoiceIn | PingIn, Field(discriminator="type")
]
_events = TypeAdapter(EventIn)


class _Admitted:
    def __init__(self, claims: DojoClaims, username: str, role: str) -> None:
        self.claims = claims
        self.username = username
        self.role = role


async def _admit(request: web.Request) -> _Admitted:
    """Check token, session and participant.

    Raises:
        Unauthorized, Forbidden, NotFound, Gone: the connection is refused (``REFUSALS``).
    """
    claims = request.app[appkeys.participant_tokens_key].decode(request.query.get("token", ""))
    try:
        session_id = UUID(request.match_info["sessionId"])
    except ValueError as exc:
        raise NotFound("session not found") from exc
    if claims.session_id != session_id:
        raise Forbidden("token is for another session", code="wrong_session")
    async with tenant_tx(request.app[appkeys.db_pool_key], claims.tenant_id) as conn:
        found = await dojos_db.admission(conn, session_id, claims.user_id, claims.login_session_id)
    role = role_in_session(found)
    # role_in_session checked both
    assert found is not None
    assert found.username is not None
    return _Admitted(claims, found.username, role)


async def _refuse_plain_get(request: web.Request) -> NoReturn:
    """Answer a request that cannot be upgraded as its socket would have been answered: with
    the status of the refusal, or 400 if the socket would have been accepted."""
    try:
        await _admit(request)
    except _DATABASE_DOWN as exc:
        raise Unavailable("the database is unavailable; retry") from exc
    raise BadRequest(
        "this is a WebSocket endpoint: connect with Upgrade: websocket", code="websocket_required"
    )


def _limits(request: web.Request) -> Limits:
    settings = request.app[appkeys.settings_key]
    return Limits(
        max_message_bytes=settings.ws_max_message_bytes,
        max_document_bytes=settings.ws_max_document_bytes,
        updates_per_second=settings.ws_updates_per_second,
        burst=settings.ws_update_burst,
        queue_bytes=settings.ws_max_queued_bytes,
        max_awareness_bytes=settings.ws_max_awareness_bytes,
    )


def _socket(request: web.Request) -> web.WebSocketResponse:
    # aiohttp's own cap is a backstop (it closes with 1009); our limit answers 4413 first.
    limit = request.app[appkeys.settings_key].ws_max_message_bytes
    # No permessage-deflate: Yjs updates are small and already compact, and a deflate context
    # per socket costs ~100 KiB and most of the CPU at thousands of sockets (bench/realtime).
    return web.WebSocketResponse(max_msg_size=limit * 4, heartbeat=_HEARTBEAT, compress=False)


@routes.socket("/v1/dojos/sessions/{sessionId:uuid}/doc")
async def doc_socket(request: web.Request) -> web.WebSocketResponse:
    """The session's shared document over the y-websocket protocol (binary frames).

    Point a stock y-websocket ``WebsocketProvider`` at ``…/v1/dojos/sessions/{sessionId}``
    with room name ``doc`` and ``params: {token}``. Observers receive everything; their edits
    are dropped. Close codes: docs/realtime.md.
    """
    return await _open(request, "doc", _doc_messages)


@routes.socket("/v1/dojos/sessions/{sessionId:uuid}/events")
async def events_socket(request: web.Request) -> web.WebSocketResponse:
    """The session's events as JSON text frames: chat, presence, WebRTC signaling, recording.

    Message schema: docs/realtime.md.
    """
    return await _open(request, "events", _event_messages)


async def _open(request: web.Request, kind: str, handle: Any) -> web.WebSocketResponse:
    """Upgrade, admit (or close with the reason), and serve the socket until it ends.

    A fault past the upgrade closes the socket with 1011 (clients retry) and is logged here:
    the request can no longer be answered over HTTP, and an error response from the
    middleware would reach the client as bytes on its socket (a protocol error, 1002).
    """
    ws = _socket(request)
    if not ws.can_prepare(request).ok:
        await _refuse_plain_get(request)
    if request.app[appkeys.draining_key].is_set():
        # Before the upgrade: a balancer may send the request to another node, and a client
        # that gets the 503 retries (through the balancer, to a node that stays).
        raise Unavailable("this node is stopping: connect again", code="draining")
    await ws.prepare(request)
    try:
        await _admit_and_serve(request, ws, kind, handle)
    except Exception:
        log.exception("socket failed", socket=kind)
        await close_socket(ws, request.transport, CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        _release(request, ws)
    return ws


def _release(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Let reference counting free the closed socket at once.

    aiohttp (3.11-3.14) hands the connection's protocol a bound method of the socket (its
    heartbeat's ``data_received_cb``) and never takes it back, and the socket holds the
    request, which holds the protocol: a reference cycle, which the GC tuner's freezing
    would keep until its rare full collection. And data arriving after the close (the
    client's close frame) arms the heartbeat timer again, holding the socket 15 s more.
    """
    with contextlib.suppress(AttributeError):
        request.protocol._data_received_cb = None
        ws._cancel_heartbeat()


async def _admit_and_serve(
    request: web.Request, ws: web.WebSocketResponse, kind: str, handle: Any
) -> None:
    """Admit the upgraded socket (or close it with the reason) and serve it until it ends."""
    rooms = request.app[rooms_key]
    try:
        admitted = await _admit(request)
        claims = admitted.claims
        room = await rooms.acquire(claims.session_id, claims.tenant_id)
    except REFUSALS as exc:
        await ws.close(code=REFUSAL_CODES[exc.status], message=exc.message.encode())
        return
    except _DATABASE_DOWN as exc:
        # The database is unreachable: a transient condition, so a code clients retry.
        log.warning("room could not be loaded", error=str(exc), socket=kind)
        await ws.close(code=CloseCode.TRY_AGAIN_LATER, message=b"room unavailable, retry")
        return
    limits = _limits(request)
    bucket = room.bucket_for(claims.user_id, limits.updates_per_second, limits.burst)
    peer = Peer(
        ws,
        claims.user_id,
        admitted.username,
        admitted.role,
        limits,
        login_session_id=claims.login_session_id,
        bucket=bucket,
    )
    cap = request.app[appkeys.settings_key].ws_sockets_per_user
    if not await rooms.claim_socket(room.session_id, claims.user_id, peer.peer_id, cap):
        # Others of the user's sockets hold every place: one may close, so a code clients
        # retry (with backoff), not a final one.
        await ws.close(
            code=CloseCode.TOO_MANY_SOCKETS, message=f"at most {cap} sockets per user".encode()
        )
        rooms.release(room)
        return
    peer.on_sent = rooms.metrics.sent
    peer.transport = request.transport
    await _serve(request, rooms, room, peer, kind, handle)


async def _serve(
    request: web.Request,
    rooms: Rooms,
    room: Room,
    peer: Peer,
    kind: str,
    handle: Any,
) -> None:
    member = f"{peer.user_id}:{peer.peer_id}"
    gauge = rooms.metrics.connections.labels(kind)
    gauge.inc()
    peer.start()
    peer.reader = asyncio.current_task()
    try:
        await rooms.mark_online(room.session_id, member)
        await handle(request, rooms, room, peer)
        if peer.close_request is not None:  # asked by another task (a shutdown, an end)
            await peer.close(*peer.close_request)
    except SocketClosed as exc:
        log.info("socket closed by limit", code=exc.code, reason=exc.reason, socket=kind)
        await peer.close(exc.code, exc.reason, drain=True)
    except _DATABASE_DOWN as exc:
        log.warning("database unreachable; socket closed for a retry", error=str(exc))
        await peer.close(CloseCode.TRY_AGAIN_LATER, "database unavailable, retry")
    except BaseException as exc:
        if not is_panic(exc):
            raise  # cancellation, KeyboardInterrupt, SystemExit: not ours to stop
        # pycrdt panicked: its PanicException is a BaseException, past every handler above
        # and the 1011 of ``_open``. The room's document may panic on every edit from now on:
        # the room is dropped and its sockets closed for a retry, to a room loaded afresh.
        if room.poisoned:  # another socket's message panicked first: logged there
            log.info("socket closed: its room is being reloaded", socket=kind)
        else:
            log.error("pycrdt panicked; the room is reloaded", socket=kind, exc_info=exc)
            rooms.drop_poisoned(room)
        await peer.close(CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        if kind == "doc":
            room.detach(peer)
        else:
            room.event_peers.discard(peer)
            if peer.in_voice:  # by a task of its own, which a cancelled handler (a client
                # gone mid-close) cannot stop halfway
                peer.in_voice = False
                rooms.background(_leave_call(rooms, room, peer))
            await _presence(rooms, room, peer, "left")
        await peer.stop()
        await rooms.mark_offline(room.session_id, member)
        room.forget_user(peer.user_id)
        gauge.dec()
        rooms.release(room)


async def _doc_messages(request: web.Request, rooms: Rooms, room: Room, peer: Peer) -> None:
    """Serve a document socket until it closes.

    Updates past the socket's rate wait in its backlog: the socket is read on only until the
    bucket has a token (then the backlog is applied as one merged update) or the backlog holds
    ``WS_MAX_MESSAGE_BYTES``, after which it is not read at all until the token comes, so a
    fast client is slowed by TCP backpressure, never cut off.
    """
    room.attach(peer)
    limit = peer.limits.max_message_bytes
    try:
        while True:
            if peer.deferred:
                wait = peer.token_wait()
                if wait <= 0 and peer.take_update_token():
                    room.apply_deferred(peer)
                    continue
                if peer.backlog_bytes >= limit:
                    await asyncio.sleep(wait)
                    continue
                try:
                    msg = await peer.receive(within=wait)
                except TimeoutError:
                    continue
            else:
                msg = await peer.receive()
            if msg is None:
                break
            if msg.type == WSMsgType.BINARY:
                rooms.metrics.bytes_in.inc(len(msg.data))
                if len(msg.data) > limit:
                    raise SocketClosed(CloseCode.TOO_LARGE, f"message exceeds {limit} bytes")
                room.receive(peer, msg.data)
            elif msg.type == WSMsgType.TEXT:
                raise SocketClosed(CloseCode.MALFORMED, "the document socket takes binary frames")
            else:  # closing, closed or an error: the socket is done
                break
    finally:
        # What the client sent before it went is kept, as if it had been read in time.
        if peer.backlog and not room.poisoned:
            with contextlib.suppress(SocketClosed):
                room.apply_deferred(peer)


async def _event_messages(request: web.Request, rooms: Rooms, room: Room, peer: Peer) -> None:
    settings = request.app[appkeys.settings_key]
    # Events that arrive while the welcome is built wait behind it; chat messages already in
    # the welcome's backlog are not sent twice.
    peer.hold()
    room.event_peers.add(peer)
    backlog_ids = await _welcome(request, rooms, room, peer)
    peer.release(lambda message: _chat_id(message) in backlog_ids)
    await _presence(rooms, room, peer, "joined")
    chat_times = room.chat_times.setdefault(peer.user_id, [])
    signals = room.signal_buckets.setdefault(
        peer.user_id, TokenBucket(settings.ws_signals_per_second, settings.ws_signal_burst)
    )
    while (msg := await peer.receive()) is not None:
        if msg.type in _FINAL:
            break
        if msg.type != WSMsgType.TEXT:
            raise SocketClosed(CloseCode.MALFORMED, "the events socket takes JSON text frames")
        size = len(msg.data.encode())
        rooms.metrics.bytes_in.inc(size)
        if size > peer.limits.max_message_bytes:
            raise SocketClosed(CloseCode.TOO_LARGE, "message too large")
        try:
            event = _events.validate_json(msg.data)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise SocketClosed(CloseCode.MALFORMED, "not valid JSON") from exc
            peer.send(_error("invalid_message", _first_error(exc)))
            continue
        try:
            frames.js_json(msg.data, "the message")  # read alike by the clients it reaches
        except Malformed as exc:
            peer.send(_error("invalid_message", str(exc)))
            continue
        if isinstance(event, PingIn):
            peer.send(json.dumps({"type": "pong"}))
        elif isinstance(event, ChatIn):
            now = time.monotonic()
            chat_times[:] = [t for t in chat_times if now - t < 60] + [now]
            if len(chat_times) > settings.ws_chat_per_minute:
                chat_times.pop()  # a refused message does not count
                peer.send(_error("rate_limited", "too many chat messages; wait a little"))
                continue
            try:
                await _chat(request, rooms, room, peer, event.text)
            except _DATABASE_DOWN:
                peer.send(_error("unavailable", "chat could not be stored; send it again"))
        elif isinstance(event, SignalIn):
            if not signals.take():
                peer.send(_error("rate_limited", "too many signals; wait a little"))
                continue
            if isinstance(event.to, UUID):
                _relay(rooms, room, peer, event, event.to)
            else:
                await _to_recorder(rooms, room, peer, event)
        elif isinstance(event, VoiceIn):
            if not signals.take():  # speaking flips often: it shares the signals' rate
                peer.send(_error("rate_limited", "too many voice updates; wait a little"))
                continue
            if event.in_voice and peer.voice_elsewhere and not event.take_over:
                peer.send(_error("voice_elsewhere", "you are in the call from another socket"))
                continue
            peer.voice_elsewhere = False
            if not event.in_voice:
                if peer.in_voice:  # not when another socket of the user has the call
                    peer.in_voice = False
                    await _leave_call(rooms, room, peer)
                continue
            state = voice.VoiceState(
                in_voice=True,
                muted=event.muted,
                speaking=event.speaking,
                connection=peer.peer_id,
            )
            peer.in_voice = True
            # Taking the call over from another socket here hangs up that socket's recorder
            # peer (this one sends its own offer).
            if room.voice_taken_over(peer.user_id, peer.peer_id) and rooms.recorders is not None:
                await rooms.recorders.left(room.session_id, peer.user_id)
            await voice.store(rooms.redis, room.session_id, peer.user_id, state)
            _emit(rooms, room, state.event(peer.user_id))
        elif isinstance(event, RandoriIn):
            if peer.role != "host":
                peer.send(_error("forbidden", "only the host runs randori"))
                continue
            period = event.period_seconds if event.action == "start" else None
            async with tenant_tx(request.app[appkeys.db_pool_key], room.tenant_id) as conn:
                await dojos_db.set_randori(conn, room.session_id, period)
            await rooms.randori_changed(room.session_id, room.tenant_id)
        elif isinstance(event, RecordingIn):
            if peer.role != "host":
                peer.send(_error("forbidden", "only the host controls recording"))
                continue
            try:
                async with tenant_tx(request.app[appkeys.db_pool_key], room.tenant_id) as conn:
                    recording = await recordings_db.control(
                        conn, room.session_id, room.tenant_id, peer.user_id, event.action
                    )
            except Conflict as exc:
                peer.send(_error(exc.code, exc.message))
                continue
            if event.action == "stop":
                await _queue_mixing(request, room, recording.id)
            event_out = recordings_db.recording_event(recording, peer.user_id)
            await rooms.recording_changed(room.session_id, room.tenant_id, event_out)


async def _queue_mixing(request: web.Request, room: Room, recording_id: UUID) -> None:
    """Queue the job that mixes a stopped recording (its row is committed)."""
    async with tenant_tx(request.app[appkeys.db_pool_key], room.tenant_id) as conn:
        tenant = await tenants_db.get(conn, room.tenant_id)
    plan = tenant.plan if tenant is not None else "standard"
    queue = request.app[appkeys.job_queue_key]
    await queue.enqueue("recording", room.tenant_id, recording_id, plan=plan)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _error(code: str, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message})


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


def _emit(rooms: Rooms, room: Room, event: dict[str, Any], to: UUID | None = None) -> None:
    """Deliver an event to this node's sockets and publish it for the others."""
    text = json.dumps(event)
    room.broadcast_event(text, to_user=to)
    rooms.bus.publish(str(room.session_id), b"e", text.encode())


async def _leave_call(rooms: Rooms, room: Room, peer: Peer) -> None:
    """The socket ``peer``, which had its user's call, left it (or closed): unless another
    socket of the user took the call over meanwhile (on another node, unheard of here yet),
    the user is out of the call, everyone is told, and their recorder peer hangs up."""
    if not await voice.leave(rooms.redis, room.session_id, peer.user_id, peer.peer_id):
        return
    _emit(rooms, room, voice.LEFT.event(peer.user_id))
    if rooms.recorders is not None:
        await rooms.recorders.left(room.session_id, peer.user_id)


def _chat_id(message: bytes | str) -> str | None:
    if not isinstance(message, str) or not message.startswith('{"type": "chat"'):
        return None
    chat_id: str | None = json.loads(message).get("id")
    return chat_id


async def _welcome(request: web.Request, rooms: Rooms, room: Room, peer: Peer) -> set[str]:
    """Send the welcome past the hold; returns the ids of the chat messages it carried."""
    backlog = request.app[appkeys.settings_key].chat_backlog
    async with tenant_tx(request.app[appkeys.db_pool_key], room.tenant_id) as conn:
        chat = await dojos_db.chat_page(conn, room.session_id, before=None, limit=backlog)
        people = await dojos_db.participants(conn, room.session_id)
        recording = await recordings_db.running(conn, room.session_id)
    online = await online_users(rooms.redis, room.session_id)
    peer.send(held=False, message=json.dumps({
        "type": "welcome",
        "sessionId": str(room.session_id),
        "you": {"userId": str(peer.user_id), "username": peer.username, "role": peer.role,
                "connection": peer.peer_id},
        "participants": [
            {"userId": str(p.user_id), "username": p.username, "role": p.role,
             "online": str(p.user_id) in online}
            for p in people
        ],
        "chat": [_chat_event(m.id, m.user_id, m.username, m.text, m.sent_at) for m in chat],
        "randori": rooms.randori_event(room),
        "voice": await voice.in_call(rooms.redis, room.session_id, online),
        "recording": None if recording is None
        else recordings_db.recording_event(recording, recording.started_by),
    }))  # fmt: skip
    return {str(m.id) for m in chat}


async def _presence(rooms: Rooms, room: Room, peer: Peer, what: str) -> None:
    _emit(rooms, room, {
        "type": "presence",
        "event": what,
        "userId": str(peer.user_id),
        "username": peer.username,
        "role": peer.role,
        "at": _now(),
    })  # fmt: skip


def _chat_event(
    message_id: UUID, user_id: UUID, username: str, text: str, sent_at: datetime
) -> dict[str, Any]:
    return {
        "type": "chat",
        "id": str(message_id),
        "userId": str(user_id),
        "username": username,
        "text": text,
        "sentAt": sent_at.isoformat(),
    }


async def _chat(request: web.Request, rooms: Rooms, room: Room, peer: Peer, text: str) -> None:
    """Persist first, then deliver: a chat message others saw is never lost."""
    if "\x00" in text:
        peer.send(_error("invalid_message", "text: must not contain NUL characters"))
        return
    message_id = uuid.uuid4()
    async with tenant_tx(request.app[appkeys.db_pool_key], room.tenant_id) as conn:
        sent_at = await dojos_db.add_chat(
            conn,
            message_id=message_id,
            session_id=room.session_id,
            tenant_id=room.tenant_id,
            user_id=peer.user_id,
            text=text,
        )
    _emit(rooms, room, _chat_event(message_id, peer.user_id, peer.username, text, sent_at))


async def _to_recorder(rooms: Rooms, room: Room, peer: Peer, event: SignalIn) -> None:
    """A signal to the recorder peer of this node: answered to this socket alone."""
    if rooms.recorders is None:
        peer.send(_error("not_recording", "this server does not record"))
        return
    try:
        answer = await rooms.recorders.signal(
            room.session_id, room.tenant_id, peer.user_id, peer.in_voice, event.kind, event.data
        )
    except RecorderError as exc:
        peer.send(_error(exc.code, exc.message))
        return
    if answer is not None:
        peer.send(json.dumps({
            "type": "signal", "from": RECORDER, "to": str(peer.user_id), "kind": "answer",
            "data": answer,
        }))  # fmt: skip


def _relay(rooms: Rooms, room: Room, peer: Peer, event: SignalIn, to: UUID) -> None:
    """WebRTC signaling: deliver to the addressee's event sockets, on whichever node."""
    _emit(
        rooms,
        room,
        {
            "type": "signal",
            "from": str(peer.user_id),
            "to": str(to),
            "kind": event.kind,
            "data": event.data,
        },
        to=to,
    )
