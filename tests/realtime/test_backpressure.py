"""Fast clients are slowed down, never closed: updates by backpressure, chat by error events.

Over ``WS_UPDATES_PER_SECOND`` (200, burst 400) the server reads a socket no faster than its
token bucket allows and applies what it queued from it as one merged update; a client that is
merely fast ends in sync with everyone. Over ``WS_CHAT_PER_MINUTE`` (120) a chat message is
answered with a ``rate_limited`` error and dropped (neither stored nor delivered); the events
socket stays open. Both run with the default limits.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, register
from tests.realtime.jsclient import JsFactory, eventually, report_of
from tests.yclient import YClient

Client = TestClient[Any, Any]
Socket = aiohttp.ClientWebSocketResponse

pytestmark = pytest.mark.timeout(180)

BURST = 3000  # single-character updates: over seven times the default burst of 400
CHAT_PER_MINUTE = 120  # the default WS_CHAT_PER_MINUTE


async def test_a_burst_of_updates_is_slowed_not_closed_and_everyone_converges(
    client: Client, admin: Account, node: JsFactory
) -> None:
    dojo = await create_dojo(client, admin, initialCode="start\n")
    tokens = [await join(client, dojo, await register(client, admin)) for _ in range(2)]
    async with aiohttp.ClientSession() as http:
        writer = await node("writer", dojo, dojo.host_token)
        listener = await node("listener", dojo, tokens[0])
        py = await YClient.connect(http, dojo.doc(tokens[1]))
        report = report_of(writer, listener, py)
        await eventually(
            lambda: writer.synced and listener.synced and py.code == "start\n",
            "sync",
            report=report,
        )
        typed = "".join(chr(ord("a") + i % 26) for i in range(BURST))
        # One transaction, so one update message, per character, as fast as the client can.
        await writer.request("type", text=typed)
        expected = "start\n" + typed
        assert writer.text == expected
        await eventually(
            lambda: listener.text == py.code == expected or bool(writer.closes),
            "the listeners catching up with the writer",
            within=60,
            report=report,
        )
        assert writer.close_codes == [], "the writer was closed"
        assert writer.terminal is None
        assert writer.status == "connected"
        assert listener.text == py.code == expected
        assert client.app is not None
        room = client.app[rooms_key].rooms[UUID(dojo.session_id)]
        assert room.code() == expected
        await py.close()


# --- chat ----------------------------------------------------------------------------------


async def _send_chat(ws: Socket, text: str) -> None:
    await ws.send_str(json.dumps({"type": "chat", "text": text}))


async def _until_pong(ws: Socket) -> list[dict[str, Any]]:
    """Ping; every event that arrives before the pong (the server handles a socket's messages
    in order, and answers them in order)."""
    await ws.send_str(json.dumps({"type": "ping"}))
    seen: list[dict[str, Any]] = []
    while True:
        msg = await ws.receive(timeout=20)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"the socket closed with {ws.close_code} ({msg.extra!r})")
        event: dict[str, Any] = json.loads(msg.data)
        if event["type"] == "pong":
            return seen
        seen.append(event)


async def _welcome(http: aiohttp.ClientSession, dojo: Dojo, token: str) -> Socket:
    """Open an events socket and read its welcome."""
    ws = await http.ws_connect(dojo.events(token))
    first = json.loads((await ws.receive(timeout=10)).data)
    assert first["type"] == "welcome", first
    return ws


async def test_chat_over_the_limit_is_refused_with_an_error_and_the_socket_stays_open(
    client: Client, admin: Account
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    extra = 5
    async with aiohttp.ClientSession() as http:
        chatty = await _welcome(http, dojo, dojo.host_token)
        other = await _welcome(http, dojo, token)
        for i in range(CHAT_PER_MINUTE + extra):
            await _send_chat(chatty, f"m{i}")
        seen = await _until_pong(chatty)

        chats = [e["text"] for e in seen if e["type"] == "chat"]
        errors = [e for e in seen if e["type"] == "error"]
        assert chats == [f"m{i}" for i in range(CHAT_PER_MINUTE)]
        assert len(errors) == extra, errors
        for error in errors:
            assert set(error) == {"type", "code", "message"}
            assert error["code"] == "rate_limited"
            assert isinstance(error["message"], str)
            assert error["message"]

        # Still open: it can do anything but chat.
        assert await _until_pong(chatty) == []
        # The others received the accepted messages only.
        received = [e["text"] for e in await _until_pong(other) if e["type"] == "chat"]
        assert received == chats
        resp = await client.get(
            f"/v1/dojos/sessions/{dojo.session_id}/chat?limit=200", headers=admin.auth
        )
        assert resp.status == 200, await resp.text()
        stored = [m["text"] for m in (await resp.json())["messages"]]
        assert stored == chats
        await chatty.close()
        await other.close()
