"""Every accepted update reaches PostgreSQL even when the node that accepted it never writes
it (it died), and no client is left behind by an update that waits for a dependency.

Nodes are apps in this process on the shared PostgreSQL and Redis. A node that "died" is one
whose flush never runs (a persistence interval of an hour): what it accepted is in its memory,
in the room's stream and in its clients, never in PostgreSQL by its own hand, as with a node
killed inside the interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from pycrdt import create_update_message
from pydantic import SecretStr
from structlog.testing import capture_logs

from pocdojo.core import appkeys
from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import tenant_tx
from pocdojo.crdt import document
from pocdojo.realtime.rooms import Rooms, RoomSettings
from pocdojo.realtime.sockets import rooms_key
from tests.conftest import Engines
from tests.dojo_helpers import Dojo, corrupt_log, create_dojo, join
from tests.helpers import Account, register, signup, wait_until
from tests.restartable_engines import OwnEngines, own_engines
from tests.yclient import YClient, typed

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

DEAD = {"dojo_persist_interval": 3600.0, "dojo_idle_unload": 3600.0}
# An update another node accepted is stored within the grace, plus a flush, plus the write.
WITHIN = RoomSettings().store_grace + RoomSettings().persist_interval + 1.0


def _on(client: Client, url: str) -> str:
    """The same socket URL on another in-process node."""
    return f"ws://{client.host}:{client.port}/v1/{url.split('/v1/', 1)[1]}"


def _rooms(client: Client) -> Rooms:
    assert client.app is not None
    rooms: Rooms = client.app[rooms_key]
    return rooms


async def _nodes(make_client: MakeClient) -> tuple[Client, Client, Account, Dojo, str]:
    """A node that "died" and a live one; a dojo (empty code), its host and a guest's token."""
    dead = await make_client(**DEAD)
    alive = await make_client()
    host = await signup(alive)
    dojo = await create_dojo(alive, host, initialCode="")
    guest = await join(alive, dojo, await register(alive, host))
    return dead, alive, host, dojo, guest


async def _stored_rows(client: Client, tenant: str, dojo: Dojo) -> dojos_db.StoredDoc:
    assert client.app is not None
    async with tenant_tx(client.app[appkeys.db_pool_key], UUID(tenant)) as conn:
        return await dojos_db.load_doc(conn, UUID(dojo.session_id))


async def _stored_code(client: Client, tenant: str, dojo: Dojo) -> str:
    stored = await _stored_rows(client, tenant, dojo)
    return document.doc_from(stored.snapshot, stored.updates).code()


async def test_what_a_dead_node_accepted_is_stored_by_a_node_that_holds_it(
    make_client: MakeClient,
) -> None:
    dead, alive, host, dojo, guest = await _nodes(make_client)
    async with aiohttp.ClientSession() as http:
        writer = await YClient.connect(http, _on(dead, dojo.doc(dojo.host_token)))
        listener = await YClient.connect(http, _on(alive, dojo.doc(guest)))
        await writer.synced.wait()
        for i in range(10):
            writer.text += f"w{i};"
        expected = "".join(f"w{i};" for i in range(10))
        await listener.wait_for(lambda: listener.code == expected)

        async def stored() -> bool:
            return await _stored_code(alive, host.tenant_id, dojo) == expected

        await wait_until(stored, within=WITHIN)
        assert _rooms(alive).metrics.remote_stored._value.get() > 0
        await writer.close()
        await listener.close()


async def test_a_live_node_announces_what_it_stored_so_others_do_not_write_it_again(
    make_client: MakeClient,
) -> None:
    one = await make_client()
    two = await make_client()
    host = await signup(one)
    dojo = await create_dojo(one, host, initialCode="")
    guest = await join(one, dojo, await register(one, host))
    async with aiohttp.ClientSession() as http:
        writer = await YClient.connect(http, _on(one, dojo.doc(dojo.host_token)))
        listener = await YClient.connect(http, _on(two, dojo.doc(guest)))
        await writer.synced.wait()
        await listener.synced.wait()
        for i in range(20):
            writer.text += f"{i};"
        expected = "".join(f"{i};" for i in range(20))
        await listener.wait_for(lambda: listener.code == expected)
        room = _rooms(two).rooms[UUID(dojo.session_id)]
        # The announcements arrive and the listener's node forgets its copies, unwritten.
        await wait_until(lambda: not room.remote, within=WITHIN)
        assert _rooms(two).metrics.remote_stored._value.get() == 0
        await writer.close()
        await listener.close()


async def test_a_client_that_moves_from_a_dead_node_never_leaves_a_gap_in_the_log(
    make_client: MakeClient,
) -> None:
    dead, alive, host, dojo, guest = await _nodes(make_client)
    async with aiohttp.ClientSession() as http:
        mover = await YClient.connect(http, _on(dead, dojo.doc(dojo.host_token)))
        listener = await YClient.connect(http, _on(alive, dojo.doc(guest)))
        await mover.synced.wait()
        mover.text += "on the dead node;"
        await listener.wait_for(lambda: listener.code == "on the dead node;")
        # The client's node dies; it reconnects to the live node and types on.
        await mover.reconnect(http, _on(alive, dojo.doc(dojo.host_token)))
        await mover.synced.wait()
        mover.text += "after the move;"
        # From the moment its new edit is stored, the log holds the old one too: the same
        # client's later items are never stored without its earlier ones.
        async with asyncio.timeout(WITHIN):
            while True:
                stored = await _stored_rows(alive, host.tenant_id, dojo)
                if any(b"after the move;" in update for update in stored.updates):
                    break
        doc = document.doc_from(stored.snapshot, stored.updates)
        assert doc.held is None
        assert doc.code() == "on the dead node;after the move;"
        await mover.close()
        await listener.close()


async def test_a_node_that_loads_the_room_later_gets_what_a_dead_node_published(
    make_client: MakeClient,
) -> None:
    dead, late, host, dojo, guest = await _nodes(make_client)
    async with aiohttp.ClientSession() as http:
        writer = await YClient.connect(http, _on(dead, dojo.doc(dojo.host_token)))
        await writer.synced.wait()
        writer.text += "only in the stream;"
        # Published, not stored: the dead node never flushes.
        bus = _rooms(dead).bus
        await wait_until(lambda: bus._outbox.empty())
        assert await _stored_code(late, host.tenant_id, dojo) == ""
        # The room loads on another node from PostgreSQL, which lacks it; the stream has it.
        joiner = await YClient.connect(http, _on(late, dojo.doc(guest)))
        await joiner.wait_for(lambda: joiner.code == "only in the stream;")

        async def stored() -> bool:
            return await _stored_code(late, host.tenant_id, dojo) == "only in the stream;"

        await wait_until(stored, within=WITHIN)
        await writer.close()
        await joiner.close()


async def test_a_client_that_synced_before_a_dependency_arrived_still_gets_what_waited(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    host = await signup(client)
    dojo = await create_dojo(client, host, initialCode="")
    u1, u2, u3 = typed("aaa", "bbb", "ccc")
    async with aiohttp.ClientSession() as http:
        sender = await YClient.connect(http, dojo.doc(dojo.host_token))
        await sender.synced.wait()
        await sender.ws.send_bytes(create_update_message(u1))
        await sender.ws.send_bytes(create_update_message(u3))  # waits for u2
        room = _rooms(client).rooms[UUID(dojo.session_id)]
        await wait_until(lambda: room.document.held is not None)
        # A client syncing now is answered with u3 too, as a Yjs server answers.
        late = await YClient.connect(http, dojo.doc(dojo.host_token))
        await late.wait_for(lambda: late.code == "aaa")
        await sender.ws.send_bytes(create_update_message(u2))
        await late.wait_for(lambda: late.code == "aaabbbccc")
        assert room.document.held is None
        await sender.close()
        await late.close()


async def test_a_room_that_cannot_be_stored_at_shutdown_does_not_keep_the_others_unstored(
    make_client: MakeClient, engines: Engines
) -> None:
    # Rooms are stored only when they unload, here at shutdown.
    node = await make_client(**DEAD)
    host = await signup(node)
    broken = await create_dojo(node, host, initialCode="")
    kept = await create_dojo(node, host, initialCode="")
    async with aiohttp.ClientSession() as http:
        first = await YClient.connect(http, broken.doc(broken.host_token))  # loaded first
        await first.synced.wait()
        second = await YClient.connect(http, kept.doc(kept.host_token))
        await second.synced.wait()
        second.text += "typed before the shutdown;"
        room = _rooms(node).rooms[UUID(kept.session_id)]
        await wait_until(lambda: room.code() == "typed before the shutdown;")
        # The first room's log gains a row no document can read: its unload, which folds
        # the log into a snapshot, fails.
        await corrupt_log(engines.database_url, broken, host.tenant_id)
        with capture_logs() as logs:
            await node.close()  # stops every room; raised at the first failure before
        assert await first.wait_closed() == second.close_code == aiohttp.WSCloseCode.GOING_AWAY
    pool = await asyncpg.create_pool(engines.database_url, min_size=1, max_size=1)
    try:
        stored = await document.load(pool, UUID(host.tenant_id), UUID(kept.session_id))
    finally:
        await pool.close()
    assert stored.code() == "typed before the shutdown;"
    failures = [e for e in logs if e["event"] == "room unload failed"]
    assert [e["session"] for e in failures] == [broken.session_id], logs


@pytest.fixture
def own(tmp_path: Path) -> Iterator[OwnEngines]:
    """A PostgreSQL and Valkey of this test's own, which it may stop."""
    with own_engines(tmp_path / "own") as started:
        yield started


async def test_a_room_that_cannot_be_stored_when_idle_stays_loaded_until_it_is(
    make_client: MakeClient, own: OwnEngines
) -> None:
    """PostgreSQL is down when the last client leaves: the room's unload fails, and the room
    stays loaded with what it accepted (before, it was forgotten, and that with it); it is
    stored and unloaded once PostgreSQL is back."""
    node = await make_client(
        database_url=SecretStr(own.database_url),
        database_app_url=SecretStr(own.database_app_url),
        redis_url=SecretStr(own.redis_url),
        dojo_idle_unload=0.3,
        dojo_persist_interval=5.0,  # only the unload stores
    )
    host = await signup(node)
    dojo = await create_dojo(node, host, initialCode="")
    rooms = _rooms(node)
    async with aiohttp.ClientSession() as http:
        writer = await YClient.connect(http, dojo.doc(dojo.host_token))
        await writer.synced.wait()
        writer.text += "typed while PostgreSQL goes away;"
        room = rooms.rooms[UUID(dojo.session_id)]
        await wait_until(lambda: room.code() == "typed while PostgreSQL goes away;")
        await asyncio.to_thread(own.postgres.stop, "fast")
        failed_at: list[float] = []  # when each failed unload was first seen

        def failed(times: int) -> bool:
            seen: int = sum(e["event"] == "room unload failed" for e in logs)
            failed_at.extend([time.monotonic()] * (seen - len(failed_at)))
            return seen >= times

        with capture_logs() as logs:
            await writer.close()
            await wait_until(lambda: failed(3), within=15)
        assert rooms.rooms.get(UUID(dojo.session_id)) is room
        assert room.unsaved
        # Tried again after 1 s, then 2 s (not every 0.3 s, the idle delay, as it once was).
        assert failed_at[2] - failed_at[0] > 2.5, failed_at
        # An unload asked for meanwhile (the host ends the session as the node stops) waits
        # for the one under way, and fails as it does, leaving nothing half-done.
        outcomes = await asyncio.gather(
            rooms.unload(room, reason="unload"),
            rooms.unload(room, reason="end"),
            return_exceptions=True,
        )
        assert all(isinstance(o, OSError | asyncpg.PostgresError) for o in outcomes), outcomes
        assert rooms.rooms.get(UUID(dojo.session_id)) is room
        assert not rooms._closing
    await asyncio.to_thread(own.postgres.start)
    # Five failures so far: the next try comes 16 s after the last.
    await wait_until(lambda: UUID(dojo.session_id) not in rooms.rooms, within=30)
    pool = await asyncpg.create_pool(own.database_url, min_size=1, max_size=1)
    try:
        stored = await document.load(pool, UUID(host.tenant_id), UUID(dojo.session_id))
    finally:
        await pool.close()
    assert stored.code() == "typed while PostgreSQL goes away;"
