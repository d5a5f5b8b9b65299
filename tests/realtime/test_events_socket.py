"""The JSON events socket: welcome, chat, presence, signaling, recording, errors, limits."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestClient

from pocdojo.core import appkeys
from pocdojo.realtime.peer import CloseCode
from tests.conftest import TEST_JWT_SECRET
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, error_of, register, signup
from tests.yclient import next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
Socket = aiohttp.ClientWebSocketResponse

DEADLINE = 10.0
CHAT_FIELDS = {"type", "id", "userId", "username", "text", "sentAt"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def connect(http: aiohttp.ClientSession, dojo: Dojo, token: str) -> Socket:
    return await http.ws_connect(dojo.events(token))


async def receive_json(ws: Socket) -> dict[str, Any]:
    """The next frame, which must be a JSON text frame."""
    async with asyncio.timeout(DEADLINE):
        msg = await ws.receive()
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, ws.close_code)
    event: dict[str, Any] = json.loads(msg.data)
    return event


async def welcome(
    http: aiohttp.ClientSession, dojo: Dojo, token: str
) -> tuple[Socket, dict[str, Any]]:
    """Connect and read the welcome, which must be the very first message."""
    ws = await connect(http, dojo, token)
    first = await receive_json(ws)
    assert first["type"] == "welcome", first
    return ws, first


async def send(ws: Socket, message: dict[str, Any]) -> None:
    await ws.send_str(json.dumps(message))


async def until_pong(ws: Socket) -> list[dict[str, Any]]:
    """Send a ping; return every event that arrives before its pong.

    The server answers a socket's messages in order and queues what it sends it in order, so
    anything delivered to this socket before the ping was handled shows up here.
    """
    await send(ws, {"type": "ping"})
    seen: list[dict[str, Any]] = []
    while True:
        event = await receive_json(ws)
        if event["type"] == "pong":
            return seen
        seen.append(event)


async def close_code(ws: Socket) -> int | None:
    """Read (skipping text frames) until the server closes; the close code."""
    async with asyncio.timeout(DEADLINE):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
    return ws.close_code


async def next_matching(ws: Socket, kind: str, **fields: Any) -> dict[str, Any]:
    """The next event of ``kind`` whose fields have the given values (skipping others)."""
    while True:
        event = await next_event(ws, kind)
        if all(event.get(k) == v for k, v in fields.items()):
            return event


async def chat_history(client: Client, account: Account, dojo: Dojo) -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/dojos/sessions/{dojo.session_id}/chat", headers=account.auth)
    assert resp.status == 200, await resp.text()
    messages: list[dict[str, Any]] = (await resp.json())["messages"]
    return messages


async def end_session(client: Client, host: Account, dojo: Dojo) -> None:
    resp = await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/end", headers=host.auth, json={}
    )
    assert resp.status == 200, await resp.text()


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# --- welcome ---------------------------------------------------------------------------------


async def test_welcome_comes_first_and_describes_the_session(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    watcher = await register(client, admin)
    token = await join(client, dojo, guest)
    await join(client, dojo, watcher, role="observer")
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    ws, hello = await welcome(http, dojo, token)
    assert set(hello) == {
        "type", "sessionId", "you", "participants", "chat", "randori", "voice", "recording"
    }  # fmt: skip
    assert hello["voice"] == []
    assert hello["recording"] is None
    assert hello["randori"] is None
    assert hello["sessionId"] == dojo.session_id
    connection = hello["you"].pop("connection")  # this socket's id, for the call
    assert isinstance(connection, str)
    assert connection
    assert hello["you"] == {
        "userId": guest.user_id,
        "username": guest.username,
        "role": "participant",
    }
    assert hello["participants"] == [
        {"userId": admin.user_id, "username": admin.username, "role": "host", "online": True},
        {"userId": guest.user_id, "username": guest.username, "role": "participant",
         "online": True},
        {"userId": watcher.user_id, "username": watcher.username, "role": "observer",
         "online": False},
    ]  # fmt: skip
    assert hello["chat"] == []
    await ws.close()
    await host_ws.close()


async def test_the_welcome_counts_a_doc_socket_as_online(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    doc = await http.ws_connect(dojo.doc(token))
    await doc.receive()  # the server's sync step 1: the socket is admitted
    ws, hello = await welcome(http, dojo, dojo.host_token)
    online = {p["userId"]: p["online"] for p in hello["participants"]}
    assert online == {admin.user_id: True, guest.user_id: True}
    await ws.close()
    await doc.close()


async def test_a_viewer_is_welcomed_as_observer(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    viewer = await register(client, admin, role="viewer")
    token = await join(client, dojo, viewer)
    ws, hello = await welcome(http, dojo, token)
    assert hello["you"]["role"] == "observer"
    await ws.close()


async def test_the_welcome_carries_the_last_chat_backlog_oldest_first(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(chat_backlog=3)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    sent = []
    for i in range(5):
        await send(ws, {"type": "chat", "text": f"m{i}"})
        sent.append(await next_event(ws, "chat"))
    late, hello = await welcome(http, dojo, dojo.host_token)
    assert hello["chat"] == sent[2:]
    assert [m["text"] for m in hello["chat"]] == ["m2", "m3", "m4"]
    await late.close()
    await ws.close()


async def test_a_backlog_of_zero_sends_no_chat(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(chat_backlog=0)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    await send(ws, {"type": "chat", "text": "hi"})
    await next_event(ws, "chat")
    late, hello = await welcome(http, dojo, dojo.host_token)
    assert hello["chat"] == []
    await late.close()
    await ws.close()


async def test_the_welcome_is_first_even_when_others_connect_at_once(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(ws_sockets_per_user=20)  # one user opens them all
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    # Each socket's presence "joined" goes to every socket already in the room, including
    # those whose welcome is still being read from the database: it must not overtake it.
    sockets = await asyncio.gather(*(connect(http, dojo, dojo.host_token) for _ in range(12)))
    firsts = [await receive_json(ws) for ws in sockets]
    assert types(firsts) == ["welcome"] * len(sockets)
    for ws in sockets:
        await ws.close()


# --- chat ------------------------------------------------------------------------------------


async def test_chat_reaches_everyone_and_is_stored(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    guest_ws, _ = await welcome(http, dojo, token)
    await send(guest_ws, {"type": "chat", "text": "hello, dojo"})
    mine = await next_event(guest_ws, "chat")
    theirs = await next_event(host_ws, "chat")
    assert mine == theirs
    assert set(mine) == CHAT_FIELDS
    uuid.UUID(mine["id"])
    assert mine["userId"] == guest.user_id
    assert mine["username"] == guest.username
    assert mine["text"] == "hello, dojo"
    sent_at = datetime.fromisoformat(mine["sentAt"])
    assert sent_at.tzinfo is not None
    [stored] = await chat_history(client, admin, dojo)
    assert (stored["id"], stored["userId"], stored["username"], stored["text"]) == (
        mine["id"],
        guest.user_id,
        guest.username,
        "hello, dojo",
    )
    assert datetime.fromisoformat(stored["sentAt"]) == sent_at
    late, hello = await welcome(http, dojo, dojo.host_token)
    assert hello["chat"] == [mine]
    for ws in (late, host_ws, guest_ws):
        await ws.close()


async def test_an_observer_can_chat(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    watcher = await register(client, admin)
    token = await join(client, dojo, watcher, role="observer")
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    ws, _ = await welcome(http, dojo, token)
    await send(ws, {"type": "chat", "text": "question"})
    event = await next_event(host_ws, "chat")
    assert (event["userId"], event["text"]) == (watcher.user_id, "question")
    await ws.close()
    await host_ws.close()


async def test_a_4000_character_chat_is_accepted(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    text = "é" * 4000
    await send(ws, {"type": "chat", "text": text})
    assert (await next_event(ws, "chat"))["text"] == text
    assert [m["text"] for m in await chat_history(client, admin, dojo)] == [text]
    await ws.close()


async def test_nul_in_chat_is_refused_and_nothing_is_stored(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    guest_ws, _ = await welcome(http, dojo, token)
    await until_pong(host_ws)  # the guest's presence is behind us
    await send(guest_ws, {"type": "chat", "text": "bad\u0000byte"})
    error = await next_event(guest_ws, "error")
    assert error["code"] == "invalid_message"
    assert "NUL" in error["message"]
    assert "chat" not in types(await until_pong(guest_ws))
    assert "chat" not in types(await until_pong(host_ws))
    assert await chat_history(client, admin, dojo) == []
    await guest_ws.close()
    await host_ws.close()


async def test_chat_over_the_limit_is_refused_with_an_error_and_the_socket_stays_open(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(ws_chat_per_minute=3)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    for i in range(5):
        await send(ws, {"type": "chat", "text": f"spam {i}"})
    events = await until_pong(ws)
    # The three accepted were stored and sent to everyone, the sender included; the others
    # were answered with an error, and the socket is still open (the pong came back).
    assert [e["text"] for e in events if e["type"] == "chat"] == ["spam 0", "spam 1", "spam 2"]
    errors = [e for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["rate_limited", "rate_limited"]
    assert not ws.closed
    stored = [m["text"] for m in await chat_history(client, admin, dojo)]
    assert stored == ["spam 0", "spam 1", "spam 2"]
    await ws.close()


async def test_the_chat_limit_is_per_user_and_spares_the_others(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(ws_chat_per_minute=1)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    noisy, _ = await welcome(http, dojo, dojo.host_token)
    # A second socket of the same user shares its limit: more sockets do not buy more.
    same_user, _ = await welcome(http, dojo, dojo.host_token)
    calm, _ = await welcome(http, dojo, await join(client, dojo, await register(client, admin)))
    await send(noisy, {"type": "chat", "text": "one"})
    await send(noisy, {"type": "chat", "text": "two"})
    assert (await next_event(noisy, "error"))["code"] == "rate_limited"
    await send(same_user, {"type": "chat", "text": "three"})
    assert (await next_event(same_user, "error"))["code"] == "rate_limited"
    await same_user.close()
    await send(calm, {"type": "chat", "text": "still fine"})
    await next_matching(calm, "chat", text="still fine")
    await calm.close()
    await noisy.close()


# --- presence --------------------------------------------------------------------------------


async def test_presence_joined_and_left_reach_the_others(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    guest_ws, _ = await welcome(http, dojo, token)
    joined = await next_matching(host_ws, "presence", userId=guest.user_id)
    assert set(joined) == {"type", "event", "userId", "username", "role", "at"}
    assert (joined["event"], joined["userId"], joined["username"], joined["role"]) == (
        "joined",
        guest.user_id,
        guest.username,
        "participant",
    )
    assert datetime.fromisoformat(joined["at"]).tzinfo is not None
    await guest_ws.close()
    left = await next_matching(host_ws, "presence", event="left")
    assert (left["event"], left["userId"], left["username"], left["role"]) == (
        "left",
        guest.user_id,
        guest.username,
        "participant",
    )
    await host_ws.close()


async def test_closing_one_socket_leaves_the_others_working(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    first, _ = await welcome(http, dojo, dojo.host_token)
    second, _ = await welcome(http, dojo, dojo.host_token)
    await first.close()
    await send(second, {"type": "chat", "text": "anyone?"})
    assert (await next_event(second, "chat"))["text"] == "anyone?"
    await second.close()


# --- signaling -------------------------------------------------------------------------------


async def test_a_signal_reaches_only_its_addressee(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    alice, bob = await register(client, admin), await register(client, admin)
    alice_ws, _ = await welcome(http, dojo, await join(client, dojo, alice))
    bob_ws, _ = await welcome(http, dojo, await join(client, dojo, bob))
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    offer = {"sdp": "v=0 o=- 1 2 IN IP4 127.0.0.1", "type": "offer"}
    await send(host_ws, {"type": "signal", "to": alice.user_id, "kind": "offer", "data": offer})
    signal = await next_event(alice_ws, "signal")
    assert signal == {
        "type": "signal",
        "from": admin.user_id,
        "to": alice.user_id,
        "kind": "offer",
        "data": offer,
    }
    # Alice has it, so it was delivered wherever it went; a ping now is answered after it.
    assert "signal" not in types(await until_pong(bob_ws))
    assert "signal" not in types(await until_pong(host_ws))
    for ws in (alice_ws, bob_ws, host_ws):
        await ws.close()


# JSON that Python reads and writes but JavaScript's JSON.parse refuses (or, for an integer
# past a double, reads as Infinity): relayed, it threw in the addressee's browser.
NOT_JSON_TO_JAVASCRIPT = {
    "NaN": '{"x": NaN}',
    "Infinity": '{"x": Infinity}',
    "-Infinity": '{"a": [1, {"b": -Infinity}]}',
    "1e400": '{"x": 1e400}',
    "-1e400": "[-1e400]",
}


@pytest.mark.parametrize("data", NOT_JSON_TO_JAVASCRIPT.values(), ids=list(NOT_JSON_TO_JAVASCRIPT))
async def test_a_signal_javascript_cannot_parse_is_refused_and_relayed_to_no_one(
    client: Client, admin: Account, http: aiohttp.ClientSession, data: str
) -> None:
    dojo = await create_dojo(client, admin)
    alice = await register(client, admin)
    alice_ws, _ = await welcome(http, dojo, await join(client, dojo, alice))
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    await host_ws.send_str(
        f'{{"type": "signal", "to": "{alice.user_id}", "kind": "offer", "data": {data}}}'
    )
    error = await next_event(host_ws, "error")
    assert error["code"] == "invalid_message", error
    # Both sockets stay open, and the signal reached no one.
    assert types(await until_pong(host_ws)) == []
    assert "signal" not in types(await until_pong(alice_ws))
    for ws in (alice_ws, host_ws):
        await ws.close()


async def test_a_signal_reaches_every_socket_of_the_addressee(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    tab1, _ = await welcome(http, dojo, token)
    tab2, _ = await welcome(http, dojo, token)
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    await send(host_ws, {"type": "signal", "to": guest.user_id, "kind": "bye"})
    for ws in (tab1, tab2):
        event = await next_event(ws, "signal")
        assert (event["from"], event["kind"], event["data"]) == (admin.user_id, "bye", None)
    for ws in (tab1, tab2, host_ws):
        await ws.close()


# --- recording -------------------------------------------------------------------------------


async def test_the_host_starts_and_stops_recording_for_everyone(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    guest_ws, _ = await welcome(http, dojo, await join(client, dojo, guest))
    for action, state in (("start", "started"), ("stop", "stopped")):
        await send(host_ws, {"type": "recording", "action": action})
        for ws in (host_ws, guest_ws):
            event = await next_event(ws, "recording")
            assert set(event) == {"type", "state", "recordingId", "by", "at"}
            assert (event["state"], event["by"]) == (state, admin.user_id)
            assert datetime.fromisoformat(event["at"]).tzinfo is not None
    await guest_ws.close()
    await host_ws.close()


@pytest.mark.parametrize("role", ["participant", "observer"])
async def test_only_the_host_controls_recording(
    client: Client, admin: Account, http: aiohttp.ClientSession, role: str
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    guest_ws, _ = await welcome(http, dojo, await join(client, dojo, guest, role=role))
    await send(guest_ws, {"type": "recording", "action": "start"})
    error = await next_event(guest_ws, "error")
    assert error["code"] == "forbidden"
    assert error["message"]
    assert "recording" not in types(await until_pong(guest_ws))
    assert "recording" not in types(await until_pong(host_ws))
    await guest_ws.close()
    await host_ws.close()


# --- malformed and invalid messages ----------------------------------------------------------


async def test_ping_is_answered_with_pong(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    await send(ws, {"type": "ping"})
    assert await next_event(ws, "pong") == {"type": "pong"}
    await ws.close()


@pytest.mark.parametrize(
    "frame",
    ["{not json", "", '{"type": "chat", "text": "\\ud800"}'],
    ids=["garbage", "empty", "lone surrogate"],
)
async def test_invalid_json_closes_with_4400(
    client: Client, admin: Account, http: aiohttp.ClientSession, frame: str
) -> None:
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    await ws.send_str(frame)
    assert await close_code(ws) == CloseCode.MALFORMED


async def test_a_binary_frame_closes_with_4400(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    await ws.send_bytes(b'{"type": "ping"}')
    assert await close_code(ws) == CloseCode.MALFORMED


INVALID_MESSAGES: dict[str, Any] = {
    "unknown type": {"type": "dance"},
    "no type": {"text": "hi"},
    "chat without text": {"type": "chat"},
    "empty chat": {"type": "chat", "text": ""},
    "chat too long": {"type": "chat", "text": "x" * 4001},
    "chat text not a string": {"type": "chat", "text": 42},
    "extra field": {"type": "ping", "extra": 1},
    "signal without to": {"type": "signal", "kind": "offer"},
    "signal to a non-uuid": {"type": "signal", "to": "bob", "kind": "offer"},
    "signal of unknown kind": {"type": "signal", "to": str(uuid.uuid4()), "kind": "hug"},
    "recording of unknown action": {"type": "recording", "action": "pause"},
    "a number": 42,
    "a list": [{"type": "ping"}],
    "null": None,
}


@pytest.mark.parametrize("message", INVALID_MESSAGES.values(), ids=list(INVALID_MESSAGES))
async def test_an_invalid_message_is_answered_with_an_error(
    client: Client, admin: Account, http: aiohttp.ClientSession, message: Any
) -> None:
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    await ws.send_str(json.dumps(message))
    error = await next_event(ws, "error")
    assert set(error) == {"type", "code", "message"}
    assert error["code"] == "invalid_message"
    assert error["message"]
    # The socket stays open and keeps answering; nothing was sent to anyone.
    assert types(await until_pong(ws)) == []
    assert await chat_history(client, admin, dojo) == []
    await ws.close()


async def test_a_message_over_the_size_limit_closes_with_4413(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(ws_max_message_bytes=1024)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    await send(ws, {"type": "chat", "text": "x" * 2000})
    assert await close_code(ws) == CloseCode.TOO_LARGE
    assert await chat_history(client, admin, dojo) == []


async def test_the_size_limit_counts_bytes_not_characters(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(ws_max_message_bytes=1024)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    ws, _ = await welcome(http, dojo, dojo.host_token)
    # 900 characters, 2,700 bytes of UTF-8: over WS_MAX_MESSAGE_BYTES.
    text = "€" * 900
    frame = json.dumps({"type": "chat", "text": text}, ensure_ascii=False)
    assert len(frame) < 1024 < len(frame.encode())
    await ws.send_str(frame)
    await send(ws, {"type": "ping"})
    async with asyncio.timeout(DEADLINE):
        while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
            answer = json.loads(msg.data)["type"]
            assert answer not in ("chat", "pong"), f"{len(frame.encode())} bytes were accepted"
    assert ws.close_code == CloseCode.TOO_LARGE


# --- who may connect -------------------------------------------------------------------------


def forged(claims: dict[str, Any], secret: str = TEST_JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def claims_for(account: Account, session_id: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": account.user_id,
        "tid": account.tenant_id,
        "dsid": session_id,
        "role": "participant",
        "lsid": account.session_id,
        "iss": "pocdojo",
        "iat": now,
        "exp": now + 600,
        "typ": "dojo",
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(
    "kind", ["missing", "empty", "garbage", "access token", "wrong secret", "expired"]
)
async def test_a_bad_token_closes_with_4401(
    client: Client, admin: Account, http: aiohttp.ClientSession, kind: str
) -> None:
    dojo = await create_dojo(client, admin)
    now = int(time.time())
    token = {
        "empty": "",
        "garbage": "x.y.z",
        "access token": admin.token,
        "wrong secret": forged(claims_for(admin, dojo.session_id), "another-secret-" + "y" * 40),
        "expired": forged(claims_for(admin, dojo.session_id, iat=now - 600, exp=now - 300)),
    }.get(kind)
    target = dojo.events_url if token is None else dojo.events(token)
    ws = await http.ws_connect(target)
    assert await close_code(ws) == CloseCode.UNAUTHORIZED


async def test_a_forged_token_with_the_right_secret_is_accepted(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    # The control for the two tests above: the hand-made claims are otherwise valid.
    dojo = await create_dojo(client, admin)
    ws, hello = await welcome(http, dojo, forged(claims_for(admin, dojo.session_id)))
    assert hello["you"]["userId"] == admin.user_id
    await ws.close()


async def test_a_token_of_another_session_closes_with_4403(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    other = await create_dojo(client, admin)
    ws = await http.ws_connect(dojo.events(other.host_token))
    assert await close_code(ws) == CloseCode.FORBIDDEN


async def test_a_token_of_another_tenants_session_closes_with_4403(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    ws = await http.ws_connect(dojo.events(theirs.host_token))
    assert await close_code(ws) == CloseCode.FORBIDDEN


async def test_a_session_of_another_tenant_does_not_exist(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    assert client.app is not None
    tokens = client.app[appkeys.participant_tokens_key]
    # A genuine token of this tenant's admin that names the other tenant's session.
    token = tokens.issue(
        user_id=uuid.UUID(admin.user_id),
        tenant_id=uuid.UUID(admin.tenant_id),
        session_id=uuid.UUID(theirs.session_id),
        role="host",
        login_session_id=uuid.UUID(admin.session_id),
    )
    ws = await http.ws_connect(theirs.events(token))
    assert await close_code(ws) == CloseCode.NOT_FOUND


async def test_an_unknown_session_closes_with_4404(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    missing = str(uuid.uuid4())
    token = forged(claims_for(admin, missing))
    ws = await http.ws_connect(
        dojo.events_url.replace(dojo.session_id, missing) + f"?token={token}"
    )
    assert await close_code(ws) == CloseCode.NOT_FOUND


async def test_a_malformed_session_id_closes_with_4404(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    # Upgraded and closed, not refused at the handshake: a stock client stops at 4404, while
    # a failed handshake has it retry forever.
    dojo = await create_dojo(client, admin)
    url = dojo.events_url.replace(dojo.session_id, "not-a-session")
    ws = await http.ws_connect(url + f"?token={dojo.host_token}")
    assert await close_code(ws) == CloseCode.NOT_FOUND


async def test_a_deactivated_user_is_refused_with_4403(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    resp = await client.patch(
        f"/v1/users/{guest.user_id}", headers=admin.auth, json={"isActive": False}
    )
    assert resp.status == 200, await resp.text()
    ws = await http.ws_connect(dojo.events(token))
    assert await close_code(ws) == CloseCode.FORBIDDEN


async def test_a_token_for_a_non_participant_is_refused_with_4403(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    outsider = await register(client, admin)
    ws = await http.ws_connect(dojo.events(forged(claims_for(outsider, dojo.session_id))))
    assert await close_code(ws) == CloseCode.FORBIDDEN


# --- a plain GET, without an upgrade ---------------------------------------------------------


@pytest.mark.parametrize("socket", ["doc", "events"])
async def test_a_plain_get_answers_with_the_status_its_close_code_stands_for(
    client: Client, admin: Account, socket: str
) -> None:
    dojo = await create_dojo(client, admin)
    other = await create_dojo(client, admin)
    ended = await create_dojo(client, admin)
    await end_session(client, admin, ended)
    missing = str(uuid.uuid4())
    outsider = await register(client, admin)
    cases = [
        (dojo.session_id, None, 401, "invalid_token"),
        (dojo.session_id, "x.y.z", 401, "invalid_token"),
        (dojo.session_id, other.host_token, 403, "wrong_session"),
        (dojo.session_id, forged(claims_for(outsider, dojo.session_id)), 403, "not_participant"),
        (missing, forged(claims_for(admin, missing)), 404, "not_found"),
        (ended.session_id, ended.host_token, 410, "session_ended"),
        # Everything is in order but the upgrade itself.
        (dojo.session_id, dojo.host_token, 400, "websocket_required"),
    ]
    for session_id, token, status, code in cases:
        params = {} if token is None else {"token": token}
        resp = await client.get(f"/v1/dojos/sessions/{session_id}/{socket}", params=params)
        assert resp.status == status, (code, await resp.text())
        assert (await error_of(resp))["code"] == code


# --- the end of a session --------------------------------------------------------------------


async def test_an_ended_session_refuses_new_sockets_with_4410(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    await end_session(client, admin, dojo)
    ws = await http.ws_connect(dojo.events(dojo.host_token))
    assert await close_code(ws) == CloseCode.ENDED


async def test_ending_the_session_closes_open_event_sockets_with_4410(
    client: Client, admin: Account, http: aiohttp.ClientSession
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    guest_ws, _ = await welcome(http, dojo, await join(client, dojo, guest))
    # Read both sockets while the session ends, as browsers do.
    closing = [asyncio.create_task(close_code(ws)) for ws in (host_ws, guest_ws)]
    await end_session(client, admin, dojo)
    assert await asyncio.gather(*closing) == [CloseCode.ENDED, CloseCode.ENDED]


async def test_ending_does_not_wait_on_a_client_that_stopped_reading(
    make_client: MakeClient, http: aiohttp.ClientSession
) -> None:
    client = await make_client(ws_max_message_bytes=1024 * 1024)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    _stalled, _ = await welcome(http, dojo, await join(client, dojo, guest))
    host_ws, _ = await welcome(http, dojo, dojo.host_token)
    # The guest reads nothing from here on (a client whose network vanished, or one that
    # stalls on purpose) while signals addressed to it fill every buffer on the way.
    blob = "s" * (900 * 1024)
    for _ in range(12):
        await send(host_ws, {"type": "signal", "to": guest.user_id, "kind": "offer", "data": blob})
    await until_pong(host_ws)
    host_closed = asyncio.create_task(close_code(host_ws))
    try:
        async with asyncio.timeout(5):
            await end_session(client, admin, dojo)
    except TimeoutError:
        pytest.fail("POST …/end hangs on a socket that stopped reading")
    assert await host_closed == CloseCode.ENDED
