"""Limits that one participant cannot multiply or flood past: sockets per user, awareness
size and rate, signals, shared per-user budgets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import aiohttp
from aiohttp.test_utils import TestClient
from pycrdt import Awareness, Doc, create_awareness_message

from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import create_dojo, join
from tests.helpers import register, signup
from tests.realtime.jsclient import JsFactory, eventually
from tests.yclient import YClient, next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


def _awareness_message(state: dict[str, Any], awareness: Awareness | None = None) -> bytes:
    awareness = awareness or Awareness(Doc())
    awareness.set_local_state(state)
    return create_awareness_message(awareness.encode_awareness_update([awareness.client_id]))


async def test_one_user_holds_at_most_its_sockets_and_a_stock_client_retries_for_a_place(
    make_client: MakeClient, node: JsFactory
) -> None:
    client = await make_client(ws_sockets_per_user=4)
    host = await signup(client)
    dojo = await create_dojo(client, host, initialCode="x\n")
    async with aiohttp.ClientSession() as http:
        # Ten at once with one token: four get in, the others are refused with 4029.
        attempts = await asyncio.gather(
            *(http.ws_connect(dojo.doc(dojo.host_token)) for _ in range(10))
        )
        codes = []
        for ws in attempts:
            msg = await ws.receive()
            codes.append(ws.close_code if msg.type == aiohttp.WSMsgType.CLOSE else "open")
        assert codes.count("open") == 4, codes
        assert codes.count(CloseCode.TOO_MANY_SOCKETS) == 6, codes
        # The stock client is refused too, and keeps retrying (4029 is not final)...
        js = await node("fifth", dojo, dojo.host_token)
        await js.wait_for(lambda: CloseCode.TOO_MANY_SOCKETS in js.close_codes, "a refusal")
        # ...until a place frees up.
        for ws in attempts:
            await ws.close()
        await js.wait_for(lambda: js.synced and js.text == "x\n", "a place", within=20)
        assert js.terminal is None


async def test_an_awareness_message_over_its_limit_closes_with_4413(
    make_client: MakeClient,
) -> None:
    client = await make_client(ws_max_awareness_bytes=2048)
    host = await signup(client)
    dojo = await create_dojo(client, host)
    async with aiohttp.ClientSession() as http:
        c = await YClient.connect(http, dojo.doc(dojo.host_token))
        await c.synced.wait()
        await c.ws.send_bytes(_awareness_message({"user": {"name": "x" * 4096}}))
        assert await c.wait_closed() == CloseCode.TOO_LARGE


async def test_awareness_past_the_rate_is_coalesced_to_the_latest_state(
    make_client: MakeClient,
) -> None:
    client = await make_client(ws_updates_per_second=20, ws_update_burst=5)
    host = await signup(client)
    dojo = await create_dojo(client, host)
    guest = await join(client, dojo, await register(client, host))
    async with aiohttp.ClientSession() as http:
        bystander = await YClient.connect(http, dojo.doc(guest))
        await bystander.synced.wait()
        received = 0
        original = bystander.awareness.apply_awareness_update

        def counting(update: bytes, origin: Any) -> None:
            nonlocal received
            received += 1
            original(update, origin)

        bystander.awareness.apply_awareness_update = counting  # type: ignore[method-assign]
        flooder = await http.ws_connect(dojo.doc(dojo.host_token))
        awareness = Awareness(Doc())
        for i in range(500):
            await flooder.send_bytes(_awareness_message({"cursor": i}, awareness))
        last = {"cursor": 499}
        await bystander.wait_for(lambda: last in bystander.remote_awareness.values(), within=20)
        # Each message past the burst replaced the one waiting: far fewer than 500 arrive.
        assert received < 100, received
        await flooder.close()
        await bystander.close()


async def test_signals_past_their_rate_are_refused_with_an_error(
    make_client: MakeClient,
) -> None:
    client = await make_client(ws_signals_per_second=1, ws_signal_burst=5)
    host = await signup(client)
    dojo = await create_dojo(client, host)
    guest = await register(client, host)
    token = await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        sender = await http.ws_connect(dojo.events(dojo.host_token))
        receiver = await http.ws_connect(dojo.events(token))
        await next_event(sender, "welcome")
        await next_event(receiver, "welcome")
        for i in range(8):
            await sender.send_str(
                json.dumps(
                    {"type": "signal", "to": guest.user_id, "kind": "candidate", "data": {"i": i}}
                )
            )
        errors = [await next_event(sender, "error") for _ in range(3)]
        assert {e["code"] for e in errors} == {"rate_limited"}
        await sender.send_str(json.dumps({"type": "ping"}))
        await next_event(sender, "pong")
        signals: list[dict[str, Any]] = []
        while len(signals) < 5:
            signals.append(await next_event(receiver, "signal"))
        assert [s["data"]["i"] for s in signals] == [0, 1, 2, 3, 4]
        await sender.close()
        await receiver.close()


async def test_a_users_sockets_share_one_update_budget(client: Client) -> None:
    host = await signup(client)
    dojo = await create_dojo(client, host)
    async with aiohttp.ClientSession() as http:
        one = await YClient.connect(http, dojo.doc(dojo.host_token))
        two = await YClient.connect(http, dojo.doc(dojo.host_token))
        await one.synced.wait()
        await two.synced.wait()
        assert client.app is not None
        room = client.app[rooms_key].rooms[UUID(dojo.session_id)]
        await eventually(lambda: len(room.doc_peers) == 2, "both sockets attached")
        first, second = room.doc_peers
        assert first.bucket is second.bucket is room.buckets[UUID(host.user_id)]
        await one.close()
        await two.close()
        await eventually(lambda: not room.buckets, "the budget forgotten once both left")


async def test_no_socket_sets_or_clears_another_ones_awareness(
    client: Client, node: JsFactory
) -> None:
    """A participant (or an observer) sending states for another client's id changes
    nothing: neither its name nor its presence; its own state still goes through."""
    host = await signup(client)
    dojo = await create_dojo(client, host, initialCode="x\n")
    alice = await node("alice", dojo, dojo.host_token)
    bob = await node("bob", dojo, await join(client, dojo, await register(client, host)))
    await alice.request("awareness", state={"user": {"name": "alice"}})
    await bob.wait_for(lambda: {"user": {"name": "alice"}} in bob.others().values(), "alice")
    victim = alice.client_id
    mallory_token = await join(client, dojo, await register(client, host), role="observer")
    async with aiohttp.ClientSession() as http:
        mallory = await YClient.connect(http, dojo.doc(mallory_token))
        await mallory.synced.wait()
        clock = mallory.awareness.meta[victim]["clock"]
        spoofed, cleared = Awareness(Doc(client_id=victim)), Awareness(Doc(client_id=victim))
        spoofed._meta[victim] = {"clock": clock + 10, "lastUpdated": 0}
        spoofed._states[victim] = {"user": {"name": "mallory"}}
        await mallory.ws.send_bytes(
            create_awareness_message(spoofed.encode_awareness_update([victim]))
        )
        cleared._meta[victim] = {"clock": clock + 20, "lastUpdated": 0}
        await mallory.ws.send_bytes(
            create_awareness_message(cleared.encode_awareness_update([victim]))
        )
        await mallory.ws.send_bytes(_awareness_message({"user": {"name": "mallory"}}))
        await bob.wait_for(
            lambda: {"user": {"name": "mallory"}} in bob.others().values(), "mallory's own"
        )
        assert bob.others().get(victim) == {"user": {"name": "alice"}}
        assert mallory.close_code is None
        await mallory.close()
