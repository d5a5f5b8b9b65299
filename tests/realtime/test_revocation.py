"""Access changes reach open sockets at once, on every node.

A logout, a deactivation, a reused refresh token or a password change closes the user's
sockets with a code the stock y-websocket client never retries (4401 or 4403); a user made
viewer keeps their sockets, read-only from then on, and everyone hears of the new role.
The change is made on one node and the sockets live on another: within ``WITHIN`` seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.rooms import Rooms
from pocdojo.realtime.sockets import rooms_key
from tests.conftest import Engines
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, login, register, signup, wait_until
from tests.realtime.jsclient import JsClient, JsFactory, eventually, report_of, server_url_of
from tests.tcpproxy import redis_through_proxy
from tests.yclient import next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

pytestmark = pytest.mark.timeout(90)

WITHIN = 1.0  # the README: a revocation takes effect at once


def _rooms(client: Client) -> Rooms:
    assert client.app is not None
    rooms: Rooms = client.app[rooms_key]
    return rooms


def _on(client: Client, url: str) -> str:
    """The same socket URL on another in-process node."""
    return f"ws://{client.host}:{client.port}/v1/{url.split('/v1/', 1)[1]}"


@dataclass
class Scene:
    """Node one (where the admin acts) and node two (where the guest's sockets are); a dojo
    hosted by the admin; the guest's participant token, stock client on the document and
    socket on the events, both on node two."""

    one: Client
    two: Client
    http: aiohttp.ClientSession
    admin: Account
    guest: Account
    dojo: Dojo
    token: str
    js: JsClient
    events: aiohttp.ClientWebSocketResponse


@pytest.fixture
async def scene(make_client: MakeClient, node: JsFactory) -> AsyncIterator[Scene]:
    one = await make_client()
    two = await make_client()
    admin = await signup(one)
    guest = await register(one, admin)
    dojo = await create_dojo(one, admin, initialCode="start\n")
    token = await join(one, dojo, guest)
    js = await node("guest", dojo, token, server_url=_on(two, server_url_of(dojo)))
    await eventually(lambda: js.synced and js.text == "start\n", "the guest's sync")
    async with aiohttp.ClientSession() as http:
        events = await http.ws_connect(_on(two, dojo.events(token)))
        await next_event(events, "welcome")
        yield Scene(one, two, http, admin, guest, dojo, token, js, events)
        await events.close()


async def _closed(events: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read the events socket to its end; its close code."""
    async with asyncio.timeout(WITHIN):
        while (await events.receive()).type not in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        ):
            pass
    return events.close_code


async def _refused(scene: Scene, node: Client) -> int | None:
    """The close code a new events socket with the guest's token gets on ``node``."""
    again = await scene.http.ws_connect(_on(node, scene.dojo.events(scene.token)))
    assert (await again.receive()).type == aiohttp.WSMsgType.CLOSE
    return again.close_code


async def _final(js: JsClient, code: int) -> None:
    """The stock client was closed with ``code`` within ``WITHIN`` and gave up for good."""
    await js.wait_for(lambda: js.terminal is not None, f"a final close with {code}", within=WITHIN)
    assert js.terminal is not None
    assert js.terminal["code"] == code, js.report()


async def _patch(client: Client, admin: Account, user: Account, **fields: Any) -> None:
    resp = await client.patch(f"/v1/users/{user.user_id}", headers=admin.auth, json=fields)
    assert resp.status == 200, await resp.text()


async def test_a_deactivated_users_sockets_close_on_every_node(scene: Scene) -> None:
    await _patch(scene.one, scene.admin, scene.guest, isActive=False)
    await _final(scene.js, CloseCode.FORBIDDEN)
    assert await _closed(scene.events) == CloseCode.FORBIDDEN
    # And the token no longer opens a socket.
    assert await _refused(scene, scene.two) == CloseCode.FORBIDDEN


async def test_logging_out_closes_the_sessions_sockets_and_spends_its_participant_tokens(
    scene: Scene,
) -> None:
    one, guest, dojo = scene.one, scene.guest, scene.dojo
    # The admin's socket stays: only the guest's login session ended.
    host_events = await scene.http.ws_connect(_on(scene.two, dojo.events(dojo.host_token)))
    await next_event(host_events, "welcome")

    resp = await one.post("/v1/auth/logout", json={"token": guest.token, "userId": guest.user_id})
    assert resp.status == 200, await resp.text()
    await _final(scene.js, CloseCode.UNAUTHORIZED)
    assert await _closed(scene.events) == CloseCode.UNAUTHORIZED
    assert await _refused(scene, one) == CloseCode.UNAUTHORIZED

    # A new login gets a new token that works.
    await login(one, guest)
    fresh = await scene.http.ws_connect(dojo.events(await join(one, dojo, guest)))
    await next_event(fresh, "welcome")
    assert not host_events.closed
    await fresh.close()
    await host_events.close()


async def test_a_reused_refresh_token_closes_the_sessions_sockets(scene: Scene) -> None:
    body = {"refreshToken": scene.guest.refresh_token, "userId": scene.guest.user_id}
    assert (await scene.one.post("/v1/auth/refresh", json=body)).status == 200
    reused = await scene.one.post("/v1/auth/refresh", json=body)  # a thief's copy
    assert reused.status == 401
    await _final(scene.js, CloseCode.UNAUTHORIZED)
    assert await _closed(scene.events) == CloseCode.UNAUTHORIZED


async def test_a_password_change_closes_the_users_other_sessions_only(scene: Scene) -> None:
    one, guest, dojo = scene.one, scene.guest, scene.dojo
    other_login = Account(**{**guest.__dict__})
    await login(one, other_login)  # a second login session: the one that stays
    kept = await scene.http.ws_connect(dojo.events(await join(one, dojo, other_login)))
    await next_event(kept, "welcome")

    resp = await one.patch(
        f"/v1/users/{guest.user_id}",
        headers=other_login.auth,
        json={"password": "N3w-Secret!pass", "currentPassword": guest.password},
    )
    assert resp.status == 200, await resp.text()
    await _final(scene.js, CloseCode.UNAUTHORIZED)
    assert await _closed(scene.events) == CloseCode.UNAUTHORIZED
    await kept.send_str(json.dumps({"type": "ping"}))
    await next_event(kept, "pong")
    await kept.close()


async def test_a_user_made_viewer_becomes_read_only_in_place_and_back(
    scene: Scene, node: JsFactory
) -> None:
    one, two, admin, guest, dojo = scene.one, scene.two, scene.admin, scene.guest, scene.dojo
    js, events, http = scene.js, scene.events, scene.http
    host = await node("host", dojo, dojo.host_token)  # on node one
    host_events = await http.ws_connect(dojo.events(dojo.host_token))
    await next_event(host_events, "welcome")
    report = report_of(js, host)

    await _patch(one, admin, guest, role="viewer")
    role = {"type": "role", "userId": guest.user_id, "role": "observer"}
    async with asyncio.timeout(WITHIN):
        assert await next_event(events, "role") == role
    # Every node's events sockets hear of it, the host's on node one too.
    assert await next_event(host_events, "role") == role

    # Still connected, never closed: its edits are dropped from now on.
    await js.request("insert", index=0, text="dropped ")
    await host.request("insert", index=0, text="host ")
    await eventually(lambda: host.text == "host start\n", "the host's edit", report=report)
    await eventually(lambda: "host" in js.text, "the host's edit at the guest", report=report)
    room_two = _rooms(two).rooms[UUID(dojo.session_id)]
    room_one = _rooms(one).rooms[UUID(dojo.session_id)]
    assert "dropped" not in room_two.code()
    assert "dropped" not in room_one.code()
    assert "dropped" not in host.text
    assert js.close_codes == [], js.report()

    # Made a user again: a participant in place. Its client is asked for what the room
    # lacks, so the edits it made while read-only come too (its later edits depend on
    # them), and nothing it types waits forever.
    await _patch(one, admin, guest, role="user")
    async with asyncio.timeout(WITHIN):
        assert (await next_event(events, "role"))["role"] == "participant"
    await js.request("insert", index=0, text="back ")
    await eventually(lambda: host.text.startswith("back "), "the guest's edit", report=report)
    await eventually(lambda: js.text == host.text, "convergence", report=report)
    # "dropped " and "host " were typed at the same place at once: either order is Yjs's.
    assert host.text.startswith("back ")
    assert sorted(host.text.split()) == ["back", "dropped", "host", "start"]
    assert room_two.document.held is None
    assert room_one.document.held is None
    assert js.close_codes == [], js.report()
    await host_events.close()


async def test_a_node_cut_off_from_redis_applies_what_it_missed_when_it_is_back(
    make_client: MakeClient, engines: Engines
) -> None:
    """Pub/sub drops what is sent while a node is cut off: it re-checks every socket it
    holds when it subscribes again."""
    async with redis_through_proxy(engines.redis_url) as (proxy, url):
        one = await make_client()
        cut = await make_client(redis_url=SecretStr(url))
        admin = await signup(one)
        guest = await register(one, admin)
        dojo = await create_dojo(one, admin)
        token = await join(one, dojo, guest)
        async with aiohttp.ClientSession() as http:
            events = await http.ws_connect(_on(cut, dojo.events(token)))
            await next_event(events, "welcome")
            await proxy.cut()
            assert cut.app is not None
            bus = cut.app[rooms_key].bus
            await wait_until(lambda: not bus.healthy, within=15)

            await _patch(one, admin, guest, isActive=False)
            await proxy.restore()
            await wait_until(lambda: bus.healthy, within=15)
            assert await _closed(events) == CloseCode.FORBIDDEN
