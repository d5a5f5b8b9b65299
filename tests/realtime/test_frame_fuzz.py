"""Malformed frames on the document socket: each closes its own socket with 4400 and is applied
nowhere; the room, its other sockets and its stored document carry on.

The frames are fuzzed with Hypothesis: fully random bytes, and near-valid frames built from
real messages (declared lengths that do not match the frame, integers cut short, huge length
prefixes, valid messages around garbage, awareness states JavaScript cannot parse, client ids
past 2^53 - 1, clocks past 32 bits, values nested too deep). One server and one room serve
every example: a writer and a listener stay connected throughout; each example opens a socket
of its own, sends its frame and expects 4400, then the writer types and the listener must see
it. At the end the document read back from PostgreSQL must hold exactly what the writer
typed. Frames the server once took are kept below as regression cases.
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import (
    Array,
    Awareness,
    Doc,
    Map,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    write_message,
    write_var_uint,
)

from pocdojo.core import appkeys
from pocdojo.crdt import document
from pocdojo.crdt.wire import MAX_DEPTH, Malformed
from pocdojo.realtime import frames
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


# --- the material of near-valid frames: real messages --------------------------------------

ABOVE_53_BITS = st.integers(2**53, 2**64)


def _sample() -> tuple[list[bytes], bytes]:
    """Updates of every common kind, as pycrdt writes them, and the state vector after them."""
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("code", type=Text)
    text += "print('hi')\n"
    text.insert(0, "# ünï 😀\n")
    del text[0:2]
    values = doc.get("meta", type=Map)
    values["settings"] = {"tabs": [2, 4.5, None, True, "x"], "deep": {"a": {"b": [1]}}}
    values["list"] = Array([b"bytes", 7])
    return [*updates, doc.get_update()], doc.get_state()


UPDATES, STATE = _sample()


def _sample_awareness() -> list[bytes]:
    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"name": "Ada", "color": "#30bced"}, "cursor": None})
    present = awareness.encode_awareness_update([awareness.client_id])
    awareness.set_local_state(None)
    return [present, awareness.encode_awareness_update([awareness.client_id])]


AWARENESS = _sample_awareness()
# (the bytes before a length-prefixed payload, the payload): every such message
PREFIXED = [
    (b"\x00\x00", STATE),
    *((b"\x00\x01", update) for update in UPDATES[-2:]),
    *((b"\x00\x02", update) for update in UPDATES),
    *((b"\x01", payload) for payload in AWARENESS),
]
VALID = [
    *(prefix + write_message(payload) for prefix, payload in PREFIXED),
    b"\x03",  # an awareness query
    b"\x02\x00" + _string(b"permission denied"),  # auth
]
# Awareness states no stock client can take: not JSON to JavaScript's JSON.parse (NaN,
# Infinity, nothing, a number past a double, bytes that are not UTF-8), or not an object.
BAD_STATES = [
    b"NaN",
    b'{"x":NaN}',
    b'{"x":Infinity}',
    b'{"cursor":{"at":-Infinity}}',
    b'{"x":1e400}',
    b"",
    b"{bad",
    b'{"x":1}}',
    b'{"name":"\xff"}',
    b"[]",
    b'[{"user":1}]',
    b"1",
    b'"state"',
    b"true",
]


GOOD_ENTRY = st.builds(
    _awareness_entry,
    st.integers(0, 2**53 - 1),
    st.integers(0, 2**32),
    st.sampled_from([b"{}", b'{"user":{"name":"Grace"}}', b"null"]),
)


# --- the strategies: every frame they make is malformed by construction --------------------


def _cut(frame: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, len(frame) - 1).map(lambda size: frame[:size])


def _declared(prefix: bytes, payload: bytes) -> st.SearchStrategy[bytes]:
    """``payload`` behind a length that is not its own (short, long, or huge)."""
    wrong = st.integers(0, 2**64).filter(lambda size: size != len(payload))
    return wrong.map(lambda size: prefix + write_var_uint(size) + payload)


def _awareness_frames() -> st.SearchStrategy[bytes]:
    bad_entry = st.one_of(
        st.builds(
            _awareness_entry, st.integers(0, 2**32), st.integers(0, 9), st.sampled_from(BAD_STATES)
        ),
        st.builds(_awareness_entry, ABOVE_53_BITS, st.integers(0, 9), st.just(b"{}")),
        st.builds(_awareness_entry, st.integers(0, 2**32), ABOVE_53_BITS, st.just(b"{}")),
    )
    with_a_bad_entry = st.tuples(
        st.lists(GOOD_ENTRY, max_size=2), bad_entry, st.lists(GOOD_ENTRY, max_size=2)
    ).map(lambda parts: [*parts[0], parts[1], *parts[2]])
    # Good entries only, but more of them announced than given: the update is cut short
    # after the last one, which must not be applied either.
    good_entries = st.lists(GOOD_ENTRY, max_size=3)
    counted_past = st.tuples(good_entries, st.integers(1, 2**20)).map(
        lambda parts: (parts[0], len(parts[0]) + parts[1])
    )
    counted = st.one_of(with_a_bad_entry.map(lambda entries: (entries, len(entries))), counted_past)
    return counted.map(lambda c: create_awareness_message(write_var_uint(c[1]) + b"".join(c[0])))


def _sync_frames() -> st.SearchStrategy[bytes]:
    """Sync messages whose payload reads as Yjs and pycrdt would not read alike."""
    update_kind = st.sampled_from([b"\x00\x01", b"\x00\x02"])
    huge_client = st.one_of(
        ABOVE_53_BITS.map(lambda c: _text_item(c, 0)),
        ABOVE_53_BITS.map(lambda c: b"\x00\x01" + write_var_uint(c) + b"\x01\x00\x01"),
        # an item whose origin (its left neighbour when typed) names such a client
        ABOVE_53_BITS.map(
            lambda c: (
                b"\x01\x01\x05\x00\x84" + write_var_uint(c) + b"\x00" + _string(b"y") + b"\x00"
            )
        ),
    )
    clock_past_32_bits = st.tuples(
        st.integers(2**32 - 1, 2**53 - 1), st.binary(min_size=1, max_size=4).map(bytes.hex)
    ).map(lambda c: _text_item(5, c[0], c[1].encode()))
    too_deep = st.tuples(st.integers(MAX_DEPTH + 1, 400), st.sampled_from([117, 118])).map(
        lambda d: _nested_values(*d)
    )
    payload = st.one_of(huge_client, clock_past_32_bits, too_deep)
    updates = st.tuples(update_kind, payload).map(lambda m: m[0] + write_message(m[1]))
    state = ABOVE_53_BITS.map(
        lambda c: b"\x00\x00" + write_message(b"\x01" + write_var_uint(c) + b"\x00")
    )
    return st.one_of(updates, state)


def _refused(frame: bytes) -> bool:
    try:
        frames.parse(frame)
    except Malformed:
        return True
    return False


def malformed_frames() -> st.SearchStrategy[bytes]:
    valid = st.sampled_from(VALID)
    prefixed = st.sampled_from(PREFIXED)
    continuation = st.binary(min_size=1, max_size=9).map(lambda b: bytes(x | 0x80 for x in b))
    return st.one_of(
        # fully random bytes (the few a client may send, like "03", are left out)
        st.binary(max_size=64).filter(_refused),
        # valid messages cut short, or followed by more bytes
        valid.flatmap(_cut),
        st.tuples(valid, st.binary(min_size=1, max_size=8)).map(b"".join),
        # declared lengths other than the payload's, huge ones among them
        prefixed.flatmap(lambda m: _declared(*m)),
        # the payload cut short or followed by more, behind its own (true) length
        prefixed.flatmap(lambda m: _cut(m[1]).map(lambda cut: m[0] + write_message(cut))),
        st.tuples(prefixed, st.binary(min_size=1, max_size=8)).map(
            lambda m: m[0][0] + write_message(m[0][1] + m[1])
        ),
        # an integer that never ends, where a type, a sync type or a length begins
        st.tuples(st.sampled_from([b"", b"\x00", b"\x00\x02", b"\x01", b"\x02"]), continuation).map(
            b"".join
        ),
        # unknown message and sync types
        st.tuples(st.integers(4, 255), st.binary(max_size=8)).map(lambda m: bytes([m[0]]) + m[1]),
        st.tuples(st.integers(3, 255), st.binary(max_size=8)).map(
            lambda m: bytes([0, m[0]]) + m[1]
        ),
        _awareness_frames(),
        _sync_frames(),
    )


# --- the fuzzing ---------------------------------------------------------------------------


async def test_every_malformed_frame_closes_only_its_socket_and_changes_nothing(
    client: Client, admin: Account
) -> None:
    async with aiohttp.ClientSession() as http:
        stage = await Stage.open(client, admin, http)
        loop = asyncio.get_running_loop()

        # Hypothesis runs its examples in a thread of its own; each is played on this loop,
        # where the server and the clients live, so that one server serves them all.
        @settings(
            max_examples=500,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(frame=malformed_frames())
        def each(frame: bytes) -> None:
            asyncio.run_coroutine_threadsafe(_example(stage, frame), loop).result(timeout=30)

        await asyncio.to_thread(each)
        await stage.stored_as_typed()
        await stage.close()


async def _example(stage: Stage, frame: bytes) -> None:
    await stage.refused(frame)
    await stage.carries_on()


def test_what_the_stock_clients_send_is_taken() -> None:
    """The near-valid frames above are built from these: each is well-formed."""
    for frame in [*VALID, create_sync_message(Doc())]:
        frames.parse(frame)
