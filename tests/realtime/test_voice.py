"""Voice presence on the events socket: who is in the call, muted, speaking, on every node,
in the welcome of those who join later, and gone when the socket that set it closes; one
socket of a user in the call at a time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis, RedisCluster

from pocdojo.core.redisclient import AnyRedis
from pocdojo.realtime import voice
from tests.conftest import Engines
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, register, signup
from tests.yclient import next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


def _on(client: Client, url: str) -> str:
    """The same socket URL on another in-process node."""
    return f"ws://{client.host}:{client.port}/v1/{url.split('/v1/', 1)[1]}"


async def _two_nodes(make_client: MakeClient) -> tuple[Client, Account, Dojo, Account, str]:
    """A second node, a host, their dojo (made on the first node), a guest and its token."""
    one, two = await make_client(), await make_client()
    host = await signup(one)
    dojo = await create_dojo(one, host)
    guest = await register(one, host)
    return two, host, dojo, guest, await join(one, dojo, guest)


async def test_voice_state_reaches_every_node_and_later_joiners(make_client: MakeClient) -> None:
    two, host, dojo, _, guest_token = await _two_nodes(make_client)
    async with aiohttp.ClientSession() as http:
        talker = await http.ws_connect(dojo.events(dojo.host_token))  # node one
        connection = (await next_event(talker, "welcome"))["you"]["connection"]
        listener = await http.ws_connect(_on(two, dojo.events(guest_token)))
        await next_event(listener, "welcome")

        await talker.send_str(json.dumps({"type": "voice", "inVoice": True}))
        joined = {"type": "voice", "userId": host.user_id, "inVoice": True, "muted": False,
                  "speaking": False, "connection": connection}  # fmt: skip
        assert await next_event(listener, "voice") == joined
        await talker.send_str(json.dumps({"type": "voice", "inVoice": True, "speaking": True}))
        assert (await next_event(listener, "voice"))["speaking"] is True

        later = await http.ws_connect(_on(two, dojo.events(guest_token)))
        welcome = await next_event(later, "welcome")
        assert welcome["voice"] == [{**joined, "speaking": True}]

        await talker.send_str(json.dumps({"type": "voice"}))  # inVoice is required
        assert (await next_event(talker, "error"))["code"] == "invalid_message"

        await talker.close()  # leaving the room leaves the call
        left = await next_event(listener, "voice")
        assert left == {"type": "voice", "userId": host.user_id, "inVoice": False,
                        "muted": False, "speaking": False}  # fmt: skip
        again = await http.ws_connect(_on(two, dojo.events(guest_token)))
        assert (await next_event(again, "welcome"))["voice"] == []
        for ws in (listener, later, again):
            await ws.close()


async def _until_pong(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Ping, and return every event that came before the pong (all sent before it)."""
    await ws.send_str(json.dumps({"type": "ping"}))
    before = []
    while (event := json.loads((await ws.receive(timeout=10)).data))["type"] != "pong":
        before.append(event)
    return before


@pytest.mark.parametrize("second_tab", ["same node", "other node"])
async def test_a_users_second_socket_takes_the_call_over(
    make_client: MakeClient, second_tab: str
) -> None:
    """A user joins the call from a second tab: that tab has the call, on every node. The
    first tab's signals, late updates and closing no longer touch it, until it takes the
    call back."""
    two, host, dojo, guest_account, guest_token = await _two_nodes(make_client)
    async with aiohttp.ClientSession() as http:
        guest = await http.ws_connect(dojo.events(guest_token))  # node one
        await next_event(guest, "welcome")
        first = await http.ws_connect(dojo.events(dojo.host_token))  # node one
        first_id = (await next_event(first, "welcome"))["you"]["connection"]
        url = dojo.events(dojo.host_token)
        second = await http.ws_connect(url if second_tab == "same node" else _on(two, url))
        second_id = (await next_event(second, "welcome"))["you"]["connection"]
        assert first_id != second_id

        await first.send_str(json.dumps({"type": "voice", "inVoice": True}))
        assert (await next_event(guest, "voice"))["connection"] == first_id
        await second.send_str(json.dumps({"type": "voice", "inVoice": True}))
        assert (await next_event(guest, "voice"))["connection"] == second_id
        # The first tab hears its own join, then that its user is in the call from elsewhere.
        assert (await next_event(first, "voice"))["connection"] == first_id
        assert (await next_event(first, "voice"))["connection"] == second_id

        # A signal to the user reaches the tab in the call only.
        offer = {"type": "signal", "to": host.user_id, "kind": "offer", "data": {"sdp": "x"}}
        await guest.send_str(json.dumps(offer))
        assert (await next_event(second, "signal"))["from"] == guest_account.user_id
        assert not [e for e in await _until_pong(first) if e["type"] == "signal"]

        # A late update of the first tab (its speaking flipped as the call moved) is refused.
        await first.send_str(json.dumps({"type": "voice", "inVoice": True, "speaking": True}))
        assert (await next_event(first, "error"))["code"] == "voice_elsewhere"
        assert not [e for e in await _until_pong(guest) if e["type"] == "voice"]

        # Taking it back, on purpose.
        await first.send_str(json.dumps({"type": "voice", "inVoice": True, "takeOver": True}))
        assert (await next_event(guest, "voice"))["connection"] == first_id
        while (await next_event(second, "voice"))["connection"] != first_id:
            pass  # its own join's echo, on its own node

        # The tab that lost the call closes: the user stays in the call.
        await second.close()
        seen = []  # up to its presence "left", sent after the voice "left" it would send
        while (event := json.loads((await guest.receive(timeout=10)).data)).get("event") != "left":
            seen.append(event)
        assert event["type"] == "presence"
        assert event["userId"] == host.user_id
        assert not [e for e in seen if e["type"] == "voice"], seen
        later = await http.ws_connect(_on(two, dojo.events(guest_token)))
        [state] = (await next_event(later, "welcome"))["voice"]
        assert state["userId"] == host.user_id
        assert state["connection"] == first_id
        for ws in (guest, first, later):
            await ws.close()


async def test_a_socket_that_lost_the_call_cannot_end_it(
    redis_mode: dict[str, Any], engines: Engines
) -> None:
    """Leaving forgets the user's state only if the leaving socket set it: a first tab
    closing after a second took the call over (on a node that had not heard yet) leaves the
    user in the call."""
    url = redis_mode["redis_url"].get_secret_value() if redis_mode else engines.redis_url
    redis: AnyRedis = RedisCluster.from_url(url) if redis_mode else Redis.from_url(url)
    session, user = uuid.uuid4(), uuid.uuid4()
    try:
        joined = voice.VoiceState(in_voice=True, connection="second-tab")
        await voice.store(redis, session, user, joined)
        assert not await voice.leave(redis, session, user, "first-tab")
        assert await voice.connection_of(redis, session, user) == "second-tab"
        assert await voice.leave(redis, session, user, "second-tab")
        assert await voice.connection_of(redis, session, user) is None
        assert not await voice.leave(redis, session, user, "second-tab")  # once
    finally:
        await redis.aclose()
