"""Shared types nested in one another: a document holds at most ``MAX_TYPES`` of them.

pycrdt deletes a type, and renders one to JSON, by recursion: an update nesting arrays some
100,000 deep (680 KB, under the message limit) was taken and stored, and deleting the
outermost one overflowed the stack and killed the server. Such an update is refused (4400,
nothing applied, nothing stored), the cap holds across updates, a stock client with a few
maps is never refused, and a stored document past what is safe is not served (1011).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient
from pycrdt import create_update_message, write_var_uint

from pocdojo.core import appkeys
from pocdojo.crdt import document, wire
from pocdojo.crdt.document import MAX_TYPES
from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.room import Room
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, register, wait_until
from tests.realtime.jsclient import JsClient, JsFactory, eventually, report_of

Client = TestClient[Any, Any]

pytestmark = pytest.mark.timeout(120)

ATTACKER = 5  # the client id of the hand-built updates


def nested_arrays(depth: int) -> bytes:
    """An update of ``depth`` arrays, each in the one before, the first in the root "a"."""
    items = [b"\x07\x01" + write_var_uint(1) + b"a" + b"\x00"]  # a type item, parent named
    for clock in range(1, depth):  # each in the item before (parent by id), an array (0)
        items.append(b"\x07\x00" + write_var_uint(ATTACKER) + write_var_uint(clock - 1) + b"\x00")
    structs = write_var_uint(depth) + write_var_uint(ATTACKER) + b"\x00"
    return b"\x01" + structs + b"".join(items) + b"\x00"


def room_of(client: Client, dojo: Dojo) -> Room:
    assert client.app is not None
    room: Room = client.app[rooms_key].rooms[UUID(dojo.session_id)]
    return room


async def stored(client: Client, admin: Account, dojo: Dojo) -> document.Document:
    assert client.app is not None
    pool = client.app[appkeys.db_pool_key]
    return await document.load(pool, UUID(admin.tenant_id), UUID(dojo.session_id))


async def two_clients(
    client: Client, admin: Account, node: JsFactory, initial: str
) -> tuple[Dojo, JsClient, JsClient]:
    dojo = await create_dojo(client, admin, initialCode=initial)
    token = await join(client, dojo, await register(client, admin))
    host = await node("host", dojo, dojo.host_token)
    guest = await node("guest", dojo, token)
    await eventually(
        lambda: host.synced and guest.synced and host.text == guest.text == initial,
        "initial sync",
        report=report_of(host, guest),
    )
    return dojo, host, guest


async def test_types_nested_100000_deep_are_refused_and_nothing_is_applied_or_stored(
    client: Client, admin: Account, node: JsFactory
) -> None:
    frame = create_update_message(nested_arrays(100_000))
    assert len(frame) < 1024 * 1024  # under the message limit: only the nesting is refused
    dojo, host, guest = await two_clients(client, admin, node, "hello")

    await guest.request("sendRaw", hex=frame.hex())
    await guest.wait_for(lambda: guest.terminal is not None, "refused")
    assert guest.close_codes == [CloseCode.MALFORMED]

    room = room_of(client, dojo)
    assert room.document.types == 0
    assert ATTACKER not in wire.state_vector(room.doc.get_state())
    await host.request("insert", index=5, text="!")
    await eventually(lambda: room.code() == "hello!", "the host's edit")

    async def stored_as_typed() -> bool:
        return (await stored(client, admin, dojo)).code() == "hello!"

    await wait_until(stored_as_typed)
    doc = await stored(client, admin, dojo)
    assert doc.count_types() == 0
    assert ATTACKER not in wire.state_vector(doc.doc.get_state())
    assert host.close_codes == []


async def test_a_stock_client_with_a_few_maps_is_served_and_the_cap_holds_across_updates(
    client: Client, admin: Account, node: JsFactory
) -> None:
    dojo, host, guest = await two_clients(client, admin, node, "")
    room = room_of(client, dojo)

    # An editor's document: the code text and a few maps, edited over many updates.
    await host.request("type", text="print('hi')\n")
    await host.request("nest", key="settings", depth=3)
    await host.request("nest", key="cursor", depth=1)
    await host.request("nest", key="settings", depth=2)  # replaces the first "settings"
    await host.request("type", text="# done\n")
    await eventually(lambda: guest.text == "print('hi')\n# done\n", "the host's text")
    await eventually(lambda: room.document.types == 6, "six types")

    # Up to the cap, a type at a time or many at once, across updates; past it, refused.
    await guest.request("nest", key="deep", depth=MAX_TYPES - 6 - 10)
    await eventually(lambda: room.document.types == MAX_TYPES - 10, "nesting up to the cap")
    await guest.request("nest", key="deeper", depth=11)
    await guest.wait_for(lambda: guest.terminal is not None, "refused")
    assert guest.close_codes == [CloseCode.MALFORMED]
    assert room.document.types == MAX_TYPES - 10

    # The host was never refused, and goes on editing.
    await host.request("type", text="x")
    await eventually(lambda: room.code() == "print('hi')\n# done\nx", "the host's edit")
    assert host.close_codes == []


async def test_a_stored_document_holding_too_many_types_is_not_served(
    client: Client, admin: Account, node: JsFactory
) -> None:
    """Stored before the cap (or by a node without it): loading it is safe (yrs reads an
    update iteratively), serving it is not; the node goes on serving every other room."""
    assert client.app is not None
    pool = client.app[appkeys.db_pool_key]
    dojo = await create_dojo(client, admin, initialCode="deep")
    await document.append(
        pool, UUID(admin.tenant_id), UUID(dojo.session_id), [nested_arrays(100_000)]
    )

    js = await node("js", dojo, dojo.host_token)
    await js.wait_for(lambda: CloseCode.INTERNAL_ERROR in js.close_codes, "a close to retry")
    assert js.terminal is None  # the stock client retries 1011
    assert UUID(dojo.session_id) not in client.app[rooms_key].rooms
    await js.stop()

    other = await create_dojo(client, admin, initialCode="fine")
    ok = await node("ok", other, other.host_token)
    await eventually(lambda: ok.synced and ok.text == "fine", "another room served")
