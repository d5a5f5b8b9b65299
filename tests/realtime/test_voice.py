"""Voice presence on the events socket: who is in the call, muted, speaking, on every node,
in the welcome of those who join later, and gone when the socket that set it closes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.dojo_helpers import create_dojo, join
from tests.helpers import register, signup
from tests.yclient import next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


def _on(client: Client, url: str) -> str:
    """The same socket URL on another in-process node."""
    return f"ws://{client.host}:{client.port}/v1/{url.split('/v1/', 1)[1]}"


async def test_voice_state_reaches_every_node_and_later_joiners(make_client: MakeClient) -> None:
    one, two = await make_client(), await make_client()
    host = await signup(one)
    dojo = await create_dojo(one, host)
    guest = await register(one, host)
    guest_token = await join(one, dojo, guest)
    async with aiohttp.ClientSession() as http:
        talker = await http.ws_connect(dojo.events(dojo.host_token))  # node one
        await next_event(talker, "welcome")
        listener = await http.ws_connect(_on(two, dojo.events(guest_token)))
        await next_event(listener, "welcome")

        await talker.send_str(json.dumps({"type": "voice", "inVoice": True}))
        joined = {"type": "voice", "userId": host.user_id, "inVoice": True, "muted": False,
                  "speaking": False}  # fmt: skip
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
        assert left == {**joined, "inVoice": False}
        again = await http.ws_connect(_on(two, dojo.events(guest_token)))
        assert (await next_event(again, "welcome"))["voice"] == []
        for ws in (listener, later, again):
            await ws.close()
