"""Malformed frames on the document socket: each closes its own socket with 4400 and is applied
nowhere; the room, its other sockets and its stored document carry on.

A writer and a listener stay connected to the room; the frame comes on a socket of its own and
must be closed with 4400, then the writer types and the listener must see it, and the
document read back from PostgreSQL must hold exactly what the writer typed. The frames here
are ones the server once took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pycrdt import create_awareness_message, create_update_message, write_var_uint

from pocdojo.core import appkeys
from pocdojo.crdt import document
from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.room import Room
from pocdojo.realtime.rooms import Rooms
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, register, wait_until
from tests.realtime.jsclient import eventually
from tests.yclient import YClient

Client = TestClient[Any, Any]

pytestmark = pytest.mark.timeout(180)

# --- frames built by hand -------------------------------------------------------------------


def _string(text: bytes) -> bytes:
    return write_var_uint(len(text)) + text


def _awareness_entry(client: int, clock: int, state: bytes) -> bytes:
    return write_var_uint(client) + write_var_uint(clock) + _string(state)


def _awareness(client: int, clock: int, state: bytes) -> bytes:
    """An awareness message of one state."""
    return create_awareness_message(b"\x01" + _awareness_entry(client, clock, state))


def _string_item(text: bytes = b"x") -> bytes:
    """A string item in the root text ``code`` (content kind 4, parent named)."""
    return b"\x04\x01" + _string(b"code") + _string(text)


def _text_item(client: int, clock: int, text: bytes = b"x") -> bytes:
    """An update of one string item in ``code``."""
    clocked = write_var_uint(client) + write_var_uint(clock)
    return b"\x01\x01" + clocked + _string_item(text) + b"\x00"


def _nested_values(depth: int, tag: int) -> bytes:
    """An update of one value (arrays or maps nested ``depth`` deep) in the root array "a"."""
    opening = bytes([tag, 1]) + (_string(b"k") if tag == 118 else b"")
    value = opening * depth + b"\x7e"  # ... null
    return b"\x01\x01\x05\x00" + b"\x08\x01" + _string(b"a") + b"\x01" + value + b"\x00"


# --- a room that must carry on ----------------------------------------------------------------


@dataclass
class Stage:
    """A room with a writer and a listener that stay, and a third participant whose sockets
    each send one malformed frame."""

    client: Client
    dojo: Dojo
    http: aiohttp.ClientSession
    writer: YClient
    listener: YClient
    token: str
    tenant: UUID
    present: set[int]  # the awareness states the room holds: the server's, both clients'
    heard: set[int]  # those the listener holds: its own and the writer's
    typed: str = ""

    @classmethod
    async def open(cls, client: Client, admin: Account, http: aiohttp.ClientSession) -> Stage:
        dojo = await create_dojo(client, admin, initialCode="")
        writer = await YClient.connect(http, dojo.doc(dojo.host_token))
        listener = await YClient.connect(
            http, dojo.doc(await join(client, dojo, await register(client, admin)))
        )
        token = await join(client, dojo, await register(client, admin))
        await writer.synced.wait()
        await listener.synced.wait()
        writer.set_awareness({"user": {"name": "writer"}})
        listener.set_awareness({"user": {"name": "listener"}})
        ids = {writer.awareness.client_id, listener.awareness.client_id}
        await listener.wait_for(lambda: ids <= set(listener.awareness.states))
        stage = cls(client, dojo, http, writer, listener, token, UUID(admin.tenant_id), set(), ids)
        await eventually(lambda: ids <= set(stage.room.awareness.states), "both states")
        stage.present = set(stage.room.awareness.states)
        return stage

    @property
    def room(self) -> Room:
        assert self.client.app is not None
        rooms: Rooms = self.client.app[rooms_key]
        return rooms.rooms[self.session]

    @property
    def session(self) -> UUID:
        return UUID(self.dojo.session_id)

    async def refused(self, frame: bytes) -> None:
        """Send ``frame`` on a socket of its own, which must be closed with 4400."""
        ws = await self.http.ws_connect(self.dojo.doc(self.token))
        await ws.send_bytes(frame)
        async with asyncio.timeout(10):
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.BINARY:
                pass
        assert ws.close_code == CloseCode.MALFORMED, (ws.close_code, msg)

    async def carries_on(self) -> None:
        """The writer types and the listener sees it; nothing else reached the room."""
        self.writer.text += f"<{len(self.typed)}>"
        self.typed = self.writer.code
        await self.listener.wait_for(lambda: self.listener.code == self.typed)
        room = self.room
        assert room.code() == self.typed
        assert room.document.held is None  # nothing waits for what never comes
        assert room.doc.get_state() == self.writer.doc.get_state()
        await eventually(lambda: len(room.doc_peers) == 2, "the socket detached")
        # No awareness state is left that no socket owns, and none reached the listener.
        assert set(room.awareness.states) == self.present
        assert set(self.listener.awareness.states) == self.heard
        assert self.writer.close_code is None
        assert self.listener.close_code is None

    async def stored_as_typed(self) -> None:
        """PostgreSQL holds what the writer typed, and nothing else."""
        assert self.client.app is not None
        pool = self.client.app[appkeys.db_pool_key]

        async def load() -> document.Document:
            return await document.load(pool, self.tenant, self.session)

        async def stored() -> bool:
            return (await load()).code() == self.typed

        await wait_until(stored)
        doc = await load()
        assert doc.held is None
        assert doc.doc.get_state() == self.writer.doc.get_state()

    async def close(self) -> None:
        await self.writer.close()
        await self.listener.close()


# --- frames the server once took ------------------------------------------------------------


# Frames the server once took, applied in part or whole, or that cost it more than a socket.
TAKEN_ONCE: dict[str, Callable[[], bytes]] = {
    # The update's length says 15 bytes, 14 follow: pycrdt read the 14 and applied them.
    "a-length-longer-than-the-frame": lambda: bytes.fromhex("00020f01010100040104636f6465017800"),
    # Two states announced, one given whole: the first was applied, owned by no socket.
    "an-awareness-update-cut-short": lambda: bytes.fromhex("0107020101027b7d02"),
    # Relayed to every client, whose JSON.parse throws on it.
    "nan-in-awareness": lambda: _awareness(7, 1, b'{"cursor":NaN}'),
    "infinity-in-awareness": lambda: _awareness(7, 1, b'{"cursor":{"x":Infinity}}'),
    # Client ids past 2^53 - 1: JavaScript cannot hold them, and pycrdt keeps their low
    # 53 bits (client 2^53 became client 0 in the server's document, not in its clients').
    "an-awareness-client-id-past-53-bits": lambda: _awareness(2**53, 1, b"{}"),
    "an-update-client-id-past-53-bits": lambda: create_update_message(_text_item(2**53, 0)),
    # A struct whose clocks run past 32 bits: pycrdt panicked, and the room's document
    # panicked on every edit after.
    "a-clock-past-32-bits": lambda: create_update_message(
        b"\x01\x02\x05\x00"  # client 5 from clock 0: two structs
        + b"\x00"
        + write_var_uint(2**32 - 1)  # collected (GC), 2^32 - 1 long
        + _string_item()
        + b"\x00"
    ),
    # 100 KB of arrays nested 50,000 deep: pycrdt's reader overflowed the stack and the
    # server process died.
    "values-nested-50000-deep": lambda: create_update_message(_nested_values(50_000, 117)),
}


@pytest.mark.parametrize("frame", list(TAKEN_ONCE))
async def test_a_frame_the_server_once_took_closes_with_4400_and_changes_nothing(
    client: Client, admin: Account, frame: str
) -> None:
    async with aiohttp.ClientSession() as http:
        stage = await Stage.open(client, admin, http)
        await stage.refused(TAKEN_ONCE[frame]())
        await stage.carries_on()
        await stage.stored_as_typed()
        await stage.close()
