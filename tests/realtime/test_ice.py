"""ICE servers for a dojo's voice: credentials a real TURN server (coturn) takes, and
refuses once tampered with or expired; who may have them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from pydantic import SecretStr

from tests.dojo_helpers import create_dojo, create_poc, join
from tests.helpers import error_of, register, signup
from tests.turn import Turn, find_turnserver, turn_server

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def turn() -> Iterator[Turn]:
    binary = find_turnserver()
    if binary is None:
        pytest.skip("coturn's turnserver not found (Debian package coturn; .ci/run installs it)")
    with turn_server(binary) as server:
        yield server


async def _ice_client(make_client: MakeClient, turn: Turn, **extra: Any) -> Client:
    return await make_client(
        stun_urls=["stun:127.0.0.1:3478"],
        turn_urls=[turn.url],
        turn_secret=SecretStr(turn.secret),
        **extra,
    )


async def _relay_channel(servers: list[dict[str, Any]], within: float = 8.0) -> bool:
    """Whether two aiortc peers allowed only relayed candidates open a data channel through
    ``servers`` and carry a message over it."""
    config = RTCConfiguration(
        iceServers=[RTCIceServer(**server) for server in servers if "username" in server],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    received: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_message(message: str) -> None:
        if not received.done():
            received.set_result(message)

    callee.on("datachannel", lambda channel: channel.on("message", on_message))

    channel = caller.createDataChannel("probe")
    channel.on("open", lambda: channel.send("through the relay"))
    try:
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        try:
            return await asyncio.wait_for(received, within) == "through the relay"
        except TimeoutError:
            return False
    finally:
        await caller.close()
        await callee.close()


async def test_issued_credentials_connect_two_peers_through_a_real_turn_server(
    make_client: MakeClient, turn: Turn
) -> None:
    client = await _ice_client(make_client, turn)
    host = await signup(client)
    dojo = await create_dojo(client, host)
    resp = await client.get(f"/v1/dojos/sessions/{dojo.session_id}/ice", headers=host.auth)
    assert resp.status == 200, await resp.text()
    ice = await resp.json()
    stun, relay = ice["iceServers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"], "username": None, "credential": None}
    assert relay["urls"] == [turn.url]
    expiry, _, user = relay["username"].partition(":")
    assert user == host.user_id
    assert 0 < int(expiry) - time.time() <= ice["ttlSeconds"]
    expected = hmac.new(turn.secret.encode(), relay["username"].encode(), hashlib.sha1)
    assert relay["credential"] == base64.b64encode(expected.digest()).decode()

    assert await _relay_channel(ice["iceServers"])
    tampered = {**relay, "credential": base64.b64encode(b"x" * 20).decode()}
    assert not await _relay_channel([tampered], within=4)
    other_user = {**relay, "username": f"{expiry}:{dojo.session_id}"}  # signed for another
    assert not await _relay_channel([other_user], within=4)


async def test_expired_credentials_are_refused_by_the_turn_server(
    make_client: MakeClient, turn: Turn
) -> None:
    client = await _ice_client(make_client, turn, turn_ttl=60)
    host = await signup(client)
    dojo = await create_dojo(client, host)
    relay = (await (await client.get(
        f"/v1/dojos/sessions/{dojo.session_id}/ice", headers=host.auth
    )).json())["iceServers"][1]  # fmt: skip
    # The same user's credential as the server makes it, but with an expiry passed.
    past = f"{int(time.time()) - 10}:{host.user_id}"
    digest = hmac.new(turn.secret.encode(), past.encode(), hashlib.sha1).digest()
    expired = {**relay, "username": past, "credential": base64.b64encode(digest).decode()}
    assert not await _relay_channel([expired], within=4)


async def test_join_and_create_carry_the_ice_servers_and_only_participants_get_them(
    make_client: MakeClient, turn: Turn
) -> None:
    client = await _ice_client(make_client, turn)
    host = await signup(client)
    resp = await client.post(
        "/v1/dojos/sessions",
        headers=host.auth,
        json={"title": "Kata", "pocId": await create_poc(client, host)},
    )
    created = await resp.json()
    assert [s["urls"] for s in created["ice"]["iceServers"]] == [
        ["stun:127.0.0.1:3478"],
        [turn.url],
    ]
    dojo = await create_dojo(client, host)
    guest = await register(client, host)
    outsider_url = f"/v1/dojos/sessions/{dojo.session_id}/ice"
    refused = await client.get(outsider_url, headers=guest.auth)
    assert refused.status == 403
    assert (await error_of(refused))["code"] == "not_participant"
    joined = await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/join",
        headers=guest.auth,
        json={"joinCode": dojo.join_code},
    )
    relay = (await joined.json())["ice"]["iceServers"][1]
    assert relay["username"].endswith(f":{guest.user_id}")
    assert (await client.get(outsider_url, headers=guest.auth)).status == 200
    other = await signup(client)  # another tenant: the session does not exist there
    assert (await client.get(outsider_url, headers=other.auth)).status == 404
    assert await join(client, dojo, guest)


async def test_without_ice_settings_the_list_is_empty(client: Client) -> None:
    host = await signup(client)
    dojo = await create_dojo(client, host)
    resp = await client.get(f"/v1/dojos/sessions/{dojo.session_id}/ice", headers=host.auth)
    assert await resp.json() == {"iceServers": [], "ttlSeconds": 6 * 3600}
