"""A panic of pycrdt while a socket's message is applied.

pyo3's ``PanicException`` is a BaseException: it went past the socket's 1011 and 4400
handling, and the room's document could panic on every later edit. Now the socket is closed
with 1011 (logged once, with the traceback) and the room is dropped: every socket of it is
closed with 1011, which the stock client retries, what the room accepted is stored, and the
clients reconnect to the room loaded afresh from PostgreSQL, their resync bringing it what
it lacks.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pycrdt import Text
from structlog.testing import capture_logs

from pocdojo.core import appkeys
from pocdojo.crdt import document
from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.rooms import Rooms
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import create_dojo, join
from tests.helpers import Account, register, signup, wait_until
from tests.realtime.jsclient import JsFactory, eventually, report_of
from tests.yclient import YClient

Client = TestClient[Any, Any]

pytestmark = pytest.mark.timeout(120)


async def test_a_panic_closes_the_socket_with_1011_and_the_room_is_loaded_again(
    client: Client, admin: Account, node: JsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.app is not None
    rooms: Rooms = client.app[rooms_key]
    dojo = await create_dojo(client, admin, initialCode="start\n")
    session = UUID(dojo.session_id)
    host = await node("host", dojo, dojo.host_token)
    guest = await node("guest", dojo, await join(client, dojo, await register(client, admin)))
    report = report_of(host, guest)
    await eventually(lambda: host.synced and guest.synced, "initial sync", report=report)
    # Acknowledged (the guest has it) just before the panic, perhaps not yet stored.
    await host.request("insert", index=6, text="host\n")
    await eventually(lambda: guest.text == "start\nhost\n", "the host's edit", report=report)

    # From now on the room's document panics on every update it is given: pycrdt panics on
    # a deletion past the end of a text.
    room = rooms.rooms[session]
    code = room.doc.get(document.CODE, type=Text)

    def panicking(update: bytes) -> None:
        del code[10**6 : 10**6 + 1]

    monkeypatch.setattr(room.document, "apply", panicking)
    with capture_logs() as logs:
        await guest.request("insert", index=0, text="guest ")
        await guest.wait_for(
            lambda: CloseCode.INTERNAL_ERROR in guest.close_codes, "closed with 1011"
        )
        await host.wait_for(lambda: CloseCode.INTERNAL_ERROR in host.close_codes, "1011 too")
        expected = "guest start\nhost\n"
        await eventually(
            lambda: rooms.rooms.get(session) not in (None, room), "the room loaded again"
        )
        await eventually(
            lambda: rooms.rooms[session].code() == host.text == guest.text == expected,
            "the guest's edit, resent on reconnecting",
            report=report,
        )

    panics = [e for e in logs if e["event"] == "pycrdt panicked; the room is reloaded"]
    assert len(panics) == 1, logs
    assert type(panics[0]["exc_info"]).__name__ == "PanicException"
    assert host.terminal is None
    assert guest.terminal is None

    # The room loaded again takes edits, and stores them with what was there before.
    await host.request("insert", index=len(expected), text="after\n")
    await eventually(lambda: guest.text == expected + "after\n", "an edit after", report=report)
    pool = client.app[appkeys.db_pool_key]

    async def stored() -> bool:
        doc = await document.load(pool, UUID(admin.tenant_id), session)
        return doc.code() == expected + "after\n"

    await wait_until(stored)


async def test_a_panic_on_another_nodes_update_drops_only_that_room(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bus reader serves every room of its node: a panic applying another node's
    update drops that room (and is logged once), and the reader goes on with the others."""
    one, two = await make_client(), await make_client()
    admin = await signup(one)
    poisoned, healthy = await create_dojo(one, admin), await create_dojo(one, admin)
    assert two.app is not None
    rooms_two: Rooms = two.app[rooms_key]

    def at_two(url: str) -> str:
        return f"ws://{two.host}:{two.port}/v1/{url.split('/v1/', 1)[1]}"

    async with aiohttp.ClientSession() as http:
        clients = {}
        for dojo in (poisoned, healthy):
            clients[dojo.session_id] = (
                await YClient.connect(http, dojo.doc(dojo.host_token)),  # node one
                await YClient.connect(http, at_two(dojo.doc(dojo.host_token))),
            )
            for c in clients[dojo.session_id]:
                await c.synced.wait()
        room = rooms_two.rooms[UUID(poisoned.session_id)]
        code = room.doc.get(document.CODE, type=Text)

        def panicking(update: bytes) -> None:
            del code[10**6 : 10**6 + 1]

        monkeypatch.setattr(room.document, "apply", panicking)
        with capture_logs() as logs:
            writer, _ = clients[poisoned.session_id]
            writer.text += "boom"
            await wait_until(lambda: UUID(poisoned.session_id) not in rooms_two.rooms)
            writer, reader = clients[healthy.session_id]
            writer.text += "still read"
            await reader.wait_for(lambda: "still read" in reader.code)
        panics = [e for e in logs if e["event"] == "pycrdt panicked; the room is reloaded"]
        assert len(panics) == 1
        assert rooms_two.bus.healthy
        for pair in clients.values():
            for c in pair:
                await c.close()
