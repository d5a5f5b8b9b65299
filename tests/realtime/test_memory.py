"""A closed socket and an unloaded room are freed at once, by reference counting alone.

The GC tuner freezes long-lived objects (``core.gctune``), and frozen objects in reference
cycles are reclaimed only by its rare full collection: an unloaded room in a cycle would hold
its document, awareness and sockets for up to ``GC_FULL_EVERY`` seconds. So neither a room
nor a socket may sit in a cycle once it is done with: checked here with the collector off.
"""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import create_dojo, join
from tests.helpers import Account, register, signup, wait_until
from tests.yclient import YClient, next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _referrers(obj: Any, depth: int = 3) -> str:
    """Who holds ``obj`` (for a failure message)."""
    lines = []
    for ref in gc.get_referrers(obj):
        if isinstance(ref, list) and len(ref) > 50:
            continue
        lines.append(f"{type(ref).__name__}: {repr(ref)[:160]}")
    return "\n".join(lines[:20])


async def test_an_unloaded_room_and_its_closed_sockets_are_freed_without_the_collector(
    make_client: MakeClient, collector_off: None
) -> None:
    client = await make_client(dojo_idle_unload=0.05)
    host = await signup(client)
    dojo = await create_dojo(client, host, initialCode="start\n")
    guest = await join(client, dojo, await register(client, host))
    assert client.app is not None
    rooms = client.app[rooms_key]
    async with aiohttp.ClientSession() as http:
        writer = await YClient.connect(http, dojo.doc(dojo.host_token))
        reader = await YClient.connect(http, dojo.doc(guest))
        events = await http.ws_connect(dojo.events(guest))
        await next_event(events, "welcome")
        await writer.synced.wait()
        writer.text += "an edit\n"
        writer.set_awareness({"user": {"name": "host"}})
        await reader.wait_for(lambda: "an edit" in reader.code)
        await events.send_str(json.dumps({"type": "chat", "text": "hello"}))
        await next_event(events, "chat")

        room = rooms.rooms[UUID(dojo.session_id)]
        room_ref = weakref.ref(room)
        peers = room.doc_peers | room.event_peers
        held = [room.document, room.awareness, *peers, *(p.ws for p in peers)]
        refs = [weakref.ref(obj) for obj in held]
        del held, peers
        del room
        await writer.close()
        await reader.close()
        await events.close()
        await wait_until(lambda: UUID(dojo.session_id) not in rooms.rooms, within=10)
        await wait_until(lambda: not rooms._unloading, within=10)

    alive = [r() for r in refs if r() is not None]
    assert not alive, "\n\n".join(_referrers(p) for p in alive)
    left = room_ref()
    assert left is None, _referrers(left)


def _server_sockets() -> int:
    return sum(isinstance(o, web.WebSocketResponse) for o in gc.get_objects())


async def test_refused_sockets_are_freed_without_the_collector(
    client: Client, admin: Account, collector_off: None
) -> None:
    dojo = await create_dojo(client, admin)
    before = _server_sockets()
    async with aiohttp.ClientSession() as http:
        for token in ("", "forged", dojo.host_token + "x"):
            ws = await http.ws_connect(dojo.events(token))
            assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == CloseCode.UNAUTHORIZED
    try:
        await wait_until(lambda: _server_sockets() == before, within=5)
    except TimeoutError:
        left = [o for o in gc.get_objects() if isinstance(o, web.WebSocketResponse)]
        raise AssertionError(
            f"{before} -> {len(left)}\n" + "\n\n".join(_referrers(o) for o in left[-2:])
        ) from None
