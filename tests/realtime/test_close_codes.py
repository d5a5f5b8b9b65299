"""What each close code of the dojo sockets makes a stock y-websocket client do.

y-websocket 3.x stops for good after a close code in 4400-4499 (it emits ``closed``, here the
``terminal`` event) and reconnects after every other code. So the server sends 44xx only when
retrying cannot help, and a transient code (1001 going away, 1009 aiohttp's frame cap, 1013
try again later) otherwise: the client reconnects by itself, and its resync (both sides send
what the other lacks) loses nothing. Refusals at connect time (4401, 4403, 4404, 4410) are
covered by ``test_js_interop.py::test_a_js_client_sees_why_it_was_refused``.

The events socket is not y-websocket: a reader that falls too far behind is closed with 4008.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from uuid import UUID

import aiohttp
import pytest
from aiohttp import WSCloseCode
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from structlog.testing import capture_logs

from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.rooms import Rooms
from pocdojo.realtime.sockets import rooms_key
from tests.conftest import Engines
from tests.dojo_helpers import Dojo, corrupt_log, create_dojo, join
from tests.helpers import Account, register, signup
from tests.realtime.jsclient import JsClient, JsFactory, eventually, report_of
from tests.tcpproxy import CuttableProxy
from tests.yclient import YClient, next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

pytestmark = pytest.mark.timeout(120)

TRY_AGAIN_LATER = CloseCode.TRY_AGAIN_LATER  # the room could not be loaded
SLOW_READER = CloseCode.SLOW_READER  # an events socket fell behind reading

# y-websocket retries 200 ms after a first close (then 400, 800 … up to 2.5 s): a client that
# shows no sign of reconnecting for this long after a final close has stopped.
NO_RETRY_WATCH = 1.0


def _rooms(client: Client) -> Rooms:
    assert client.app is not None
    rooms: Rooms = client.app[rooms_key]
    return rooms


def _address(client: Client) -> tuple[str, int]:
    assert client.port is not None
    return client.host, client.port


def _sessions_url(proxy: CuttableProxy, dojo: Dojo) -> str:
    """A ``WebsocketProvider`` URL for ``dojo`` through ``proxy``."""
    return f"ws://127.0.0.1:{proxy.port}/v1/dojos/sessions/{dojo.session_id}"


async def _synced(*clients: JsClient | YClient, text: str) -> None:
    """Wait until every client is synced and holds ``text``."""

    def done() -> bool:
        return all(
            (c.synced and c.text == text)
            if isinstance(c, JsClient)
            else (c.synced.is_set() and c.code == text)
            for c in clients
        )

    await eventually(done, f"sync on {text!r}", report=report_of(*clients))


async def _final_close(js: JsClient, code: int) -> None:
    """``js`` was closed once, with ``code``, gave up (``terminal``), and stays disconnected."""
    await js.wait_for(lambda: js.terminal is not None, f"a final close with {code}")
    assert js.close_codes == [code], js.report()
    assert js.terminal is not None
    assert js.terminal["code"] == code
    seen = len(js.events)

    def retried() -> bool:
        return any(
            e["event"] == "status" and e["status"] != "disconnected" for e in js.events[seen:]
        )

    try:
        await js.wait_for(retried, "a reconnect", within=NO_RETRY_WATCH)
    except AssertionError:
        return
    raise AssertionError(f"{js.name} reconnected after the final close {code}\n{js.report()}")


# --- 4400 and 4413: final -----------------------------------------------------------------

MALFORMED = {
    "unknown-message-type": {"hex": "09"},
    "garbled-update": {"hex": "000205" + b"garbage".hex()},
    "text-frame": {"string": "hello"},
    # An update (client 1 types "x") whose length says one byte more than follows.
    "length-past-the-frame": {"hex": "00020f01010100040104636f6465017800"},
    # Awareness of two clients, cut short after the first.
    "awareness-cut-short": {"hex": "0107020101027b7d02"},
    # Awareness the other's JSON.parse would throw on, were it relayed.
    "nan-in-awareness": {"hex": "01120107010e" + b'{"cursor":NaN}'.hex()},
    # Client id 2^53 (as 8 bytes of 7 bits), past what JavaScript holds exactly.
    "awareness-client-id-past-53-bits": {"hex": "010d01" + "80" * 7 + "10" + "01027b7d"},
    "update-client-id-past-53-bits": {"hex": "0002150101" + "80" * 7 + "1000040104636f6465017800"},
}


@pytest.mark.parametrize("frame", list(MALFORMED))
async def test_a_malformed_frame_stops_a_stock_client_for_good(
    client: Client, admin: Account, node: JsFactory, frame: str
) -> None:
    dojo = await create_dojo(client, admin, initialCode="keep\n")
    bad = await node("bad", dojo, dojo.host_token)
    other = await node("other", dojo, await join(client, dojo, await register(client, admin)))
    await _synced(bad, other, text="keep\n")

    await bad.request("sendRaw", **MALFORMED[frame])
    await _final_close(bad, CloseCode.MALFORMED)

    # Only that socket was closed: the room and the others carry on.
    await other.request("insertLine", line=99, text="still here\n")
    room = _rooms(client).rooms[UUID(dojo.session_id)]
    await eventually(lambda: room.code() == "keep\nstill here\n", "the other's edit")
    assert other.closes == []
    assert other.errors == [], other.report()
    assert other.others() == {}, other.report()  # no state reached it from the bad frame


async def test_a_message_over_the_limit_stops_a_stock_client_for_good(
    make_client: MakeClient, node: JsFactory
) -> None:
    # 6 KB: over WS_MAX_MESSAGE_BYTES, under aiohttp's cap at four times that (1009).
    client = await make_client(ws_max_message_bytes=4096)
    admin = await signup(client)
    dojo = await create_dojo(client, admin, initialCode="small\n")
    async with aiohttp.ClientSession() as http:
        listener = await YClient.connect(http, dojo.doc(dojo.host_token))
        writer = await node("writer", dojo, dojo.host_token)
        await _synced(writer, listener, text="small\n")

        await writer.request("insert", index=0, text="x" * 6000)
        await _final_close(writer, CloseCode.TOO_LARGE)

        listener.text += "after\n"
        room = _rooms(client).rooms[UUID(dojo.session_id)]
        await eventually(lambda: room.code() == "small\nafter\n", "the listener's edit")
        assert "x" not in listener.code
        assert listener.close_code is None
        await listener.close()


async def test_an_update_over_the_document_limit_stops_a_stock_client_for_good(
    make_client: MakeClient, node: JsFactory
) -> None:
    client = await make_client(ws_max_document_bytes=4096)
    admin = await signup(client)
    dojo = await create_dojo(client, admin, initialCode="")
    async with aiohttp.ClientSession() as http:
        listener = await YClient.connect(http, dojo.doc(dojo.host_token))
        writer = await node("writer", dojo, dojo.host_token)
        await _synced(writer, listener, text="")
        # Each message is small; the second takes the document over 4 KiB.
        await writer.request("insert", index=0, text="a" * 3000)
        await listener.wait_for(lambda: listener.code == "a" * 3000)
        await writer.request("insert", index=3000, text="b" * 2000)
        await _final_close(writer, CloseCode.TOO_LARGE)

        room = _rooms(client).rooms[UUID(dojo.session_id)]
        assert room.code() == "a" * 3000
        assert listener.code == "a" * 3000
        assert listener.close_code is None
        await listener.close()


# --- 1009: transient, and refused again ---------------------------------------------------


async def test_a_frame_over_aiohttps_cap_is_refused_with_1009_on_every_reconnect(
    make_client: MakeClient, node: JsFactory
) -> None:
    # aiohttp caps frames at four times WS_MAX_MESSAGE_BYTES: 4 KiB here.
    client = await make_client(ws_max_message_bytes=1024)
    admin = await signup(client)
    dojo = await create_dojo(client, admin, initialCode="small\n")
    async with aiohttp.ClientSession() as http:
        listener = await YClient.connect(http, dojo.doc(dojo.host_token))
        writer = await node("writer", dojo, dojo.host_token)
        await _synced(writer, listener, text="small\n")

        await writer.request("insert", index=0, text="x" * 5000)
        # 1009 is not final for y-websocket: it reconnects, and its resync (sync step 2,
        # holding the same update) is refused again.
        too_big = WSCloseCode.MESSAGE_TOO_BIG
        await writer.wait_for(lambda: writer.close_codes.count(too_big) >= 2, "a second 1009")
        assert writer.terminal is None, writer.report()
        assert set(writer.close_codes) == {too_big}, writer.report()

        room = _rooms(client).rooms[UUID(dojo.session_id)]
        assert room.code() == "small\n"
        assert listener.code == "small\n"
        assert listener.close_code is None
        await listener.close()


# --- 1001: the node goes away; the client reconnects to another -----------------------------


async def test_a_client_of_a_node_shutting_down_reconnects_elsewhere_and_loses_nothing(
    make_client: MakeClient, node: JsFactory
) -> None:
    """Node A shuts down behind a load balancer (a proxy) while its client types; the client
    reconnects through the balancer to node B, where others edited meanwhile."""
    node_a = await make_client()
    node_b = await make_client()
    admin = await signup(node_b)
    dojo = await create_dojo(node_b, admin, initialCode="base\n")
    tokens = [await join(node_b, dojo, await register(node_b, admin)) for _ in range(2)]
    balancer = CuttableProxy(*_address(node_a))
    await balancer.start()
    try:
        async with aiohttp.ClientSession() as http:
            moving = await node(
                "moving", dojo, dojo.host_token, server_url=_sessions_url(balancer, dojo)
            )
            staying = await node("staying", dojo, tokens[0])  # on node B
            py = await YClient.connect(http, dojo.doc(tokens[1]))  # on node B
            report = report_of(moving, staying, py)
            await _synced(moving, staying, py, text="base\n")
            await moving.request("insertLine", line=99, text="moving online\n")
            await _synced(moving, staying, py, text="base\nmoving online\n")

            # New connections wait until the balancer knows where to send them.
            balancer.stop_accepting()
            typed = "typed while the node stopped"
            typing = asyncio.create_task(moving.request("type", text=typed))
            # Node A shuts down as on SIGTERM or Ctrl-C: its sockets close with 1001 at once,
            # not when aiohttp gives up waiting for them.
            shutdown = asyncio.create_task(node_a.close())
            await moving.wait_for(lambda: len(moving.closes) >= 1, "the close", within=5)
            await typing
            await shutdown
            assert moving.close_codes[0] == WSCloseCode.GOING_AWAY, moving.report()

            # Edits everywhere while it is away.
            await moving.request("insertLine", line=0, text="moving offline\n")
            await staying.request("insertLine", line=1, text="staying meanwhile\n")
            py.text.insert(0, "py meanwhile\n")
            await eventually(
                lambda: staying.text == py.code and "py meanwhile" in staying.text,
                "node B's clients converging",
                report=report,
            )
            balancer.upstream = _address(node_b)
            await balancer.restore()

            await eventually(
                lambda: moving.synced and moving.text == staying.text == py.code,
                "convergence after the reconnect",
                within=20,
                report=report,
            )
            final = py.code
            fragments = [
                "py meanwhile\n",
                "moving offline\n",
                "base\n",
                "staying meanwhile\n",
                "moving online\n",
                typed,
            ]
            assert all(final.count(f) == 1 for f in fragments), final
            assert len(final) == sum(map(len, fragments)), final
            assert _rooms(node_b).rooms[UUID(dojo.session_id)].code() == final
            assert moving.terminal is None
            await py.close()
    finally:
        await balancer.close()


# --- 1013: the room cannot be loaded; the client retries until it can -----------------------


def _postgres_proxy(url: str) -> CuttableProxy:
    """A proxy to the PostgreSQL at ``url`` (TCP, or the embedded server's Unix socket)."""
    parts = urlsplit(url)
    port = parts.port or 5432
    if parts.hostname:
        return CuttableProxy(parts.hostname, port)
    socket_dir = dict(parse_qsl(parts.query))["host"]
    return CuttableProxy.unix(f"{socket_dir}/.s.PGSQL.{port}")


def _through(url: str, proxy: CuttableProxy) -> SecretStr:
    """``url`` with its host replaced by the proxy's address."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if query.pop("host", None) is not None:
        query["sslmode"] = "disable"  # it was a Unix socket, where there is no TLS
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{proxy.port}" if user else f"127.0.0.1:{proxy.port}"
    return SecretStr(parts._replace(netloc=netloc, query=urlencode(query)).geturl())


def _closed_again(js: JsClient, before: int, times: int) -> Callable[[], bool]:
    """Whether ``js`` saw ``times`` more closes than the ``before`` it had."""
    return lambda: len(js.closes) >= before + times


async def _unloaded(client: Client) -> None:
    """Wait until no room is loaded and the last unload has finished (it sets the gauge)."""
    rooms = _rooms(client)
    await eventually(
        lambda: not rooms.rooms and rooms.metrics.rooms._value.get() == 0, "room unload"
    )


async def test_a_room_that_cannot_load_closes_with_1013_and_the_client_syncs_later(
    make_client: MakeClient, engines: Engines, node: JsFactory
) -> None:
    """PostgreSQL (behind a proxy) is cut while the room is unloaded: clients that had it, with
    edits made offline, and a newcomer are told to try again later until it is back."""
    proxy = _postgres_proxy(engines.database_url)
    await proxy.start()
    try:
        urls: dict[str, Any] = {"database_url": _through(engines.database_url, proxy)}
        if engines.database_app_url:
            urls["database_app_url"] = _through(engines.database_app_url, proxy)
        client = await make_client(dojo_idle_unload=0.0, **urls)
        admin = await signup(client)
        dojo = await create_dojo(client, admin, initialCode="base\n")
        guest = await join(client, dojo, await register(client, admin))
        late_token = await join(client, dojo, await register(client, admin))
        a = await node("a", dojo, dojo.host_token)
        b = await node("b", dojo, guest)
        await _synced(a, b, text="base\n")
        await a.request("insertLine", line=99, text="a online\n")
        await _synced(a, b, text="base\na online\n")
        await a.request("disconnect")
        await b.request("disconnect")
        await _unloaded(client)  # stored; the next socket must load it from PostgreSQL

        await proxy.cut()
        await a.request("insert", index=0, text="a offline\n")
        await b.request("insertLine", line=99, text="b offline\n")
        closes = {a: len(a.closes), b: len(b.closes)}
        await a.request("connect")
        await b.request("connect")
        late = await node("late", dojo, late_token)  # its first connection
        closes[late] = 0
        clients = (a, b, late)
        for js in clients:
            await js.wait_for(_closed_again(js, closes[js], 2), "two refused connections", 20)
        seen = {js.name: js.close_codes[closes[js] :] for js in clients}
        assert all(js.terminal is None for js in clients), report_of(*clients)()
        assert all(set(codes) == {TRY_AGAIN_LATER} for codes in seen.values()), seen

        await proxy.restore()
        await eventually(
            lambda: all(js.synced for js in clients) and a.text == b.text == late.text,
            "sync once the database is back",
            within=20,
            report=report_of(*clients),
        )
        final = a.text
        fragments = ["a offline\n", "base\n", "a online\n", "b offline\n"]
        assert all(final.count(f) == 1 for f in fragments), final
        assert len(final) == sum(map(len, fragments)), final
        assert _rooms(client).rooms[UUID(dojo.session_id)].code() == final
    finally:
        await proxy.close()


# --- 1011: a fault of ours; the client retries ------------------------------------------------


async def test_a_fault_in_the_socket_handler_closes_with_1011_logged_once_and_is_retried(
    client: Client, admin: Account, engines: Engines, node: JsFactory
) -> None:
    dojo = await create_dojo(client, admin, initialCode="x\n")
    # The room cannot load: its log holds a row no document can read. Past the upgrade, an
    # error answered over HTTP would reach the client as bytes on its socket.
    await corrupt_log(engines.database_url, dojo, admin.tenant_id)
    async with aiohttp.ClientSession() as http:
        with capture_logs() as logs:
            ws = await http.ws_connect(dojo.doc(dojo.host_token))
            msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE, msg
        assert ws.close_code == WSCloseCode.INTERNAL_ERROR
    errors = [e for e in logs if e["log_level"] in ("error", "critical")]
    assert len(errors) == 1, logs
    assert "exc_info" in errors[0]
    # The stock client retries after 1011, as after any code outside 4400-4499.
    js = await node("js", dojo, dojo.host_token)
    await js.wait_for(lambda: len(js.closes) >= 2, "a retry")
    assert set(js.close_codes) == {WSCloseCode.INTERNAL_ERROR}, js.report()
    assert js.terminal is None, js.report()


# --- 4008: an events socket that stops reading ------------------------------------------


def _server_gave_up_on(client: Client, dojo: Dojo, user_id: str) -> Callable[[], bool]:
    """Whether the server has begun closing ``user_id``'s (only) events socket."""
    room = _rooms(client).rooms[UUID(dojo.session_id)]
    [peer] = [p for p in room.event_peers if p.user_id == UUID(user_id)]
    return lambda: peer.ws.closed or peer not in room.event_peers


async def _pong(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Ping and wait for the pong: every message sent before it has been handled."""
    await ws.send_str(json.dumps({"type": "ping"}))
    await next_event(ws, "pong")


async def _read_to_close(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, int]:
    """Read everything up to the close; its code, and how many messages came before it."""
    count = 0
    async with asyncio.timeout(20):
        while (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
            count += 1
    return ws.close_code, count


async def test_an_events_socket_that_stops_reading_is_closed_with_4008(
    make_client: MakeClient,
) -> None:
    # Signals are rate-limited per user; lifted here so one sender can outrun a reader.
    client = await make_client(ws_signals_per_second=1e6, ws_signal_burst=10**6)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        slow = await http.ws_connect(dojo.events(token))
        await next_event(slow, "welcome")
        flooder = await http.ws_connect(dojo.events(dojo.host_token))
        await next_event(flooder, "welcome")
        given_up = _server_gave_up_on(client, dojo, guest.user_id)
        # The guest reads nothing from here on, while the host signals it (signals have no
        # rate limit) until the server gives up on it, once some 15 MB fill every buffer on
        # the way (the guest's queue of 1,024 messages last).
        signal = json.dumps(
            {"type": "signal", "to": guest.user_id, "kind": "offer", "data": "s" * 10240}
        )
        sent = 0
        while not given_up():
            assert sent < 8000, "the server never closed the socket that stopped reading"
            for _ in range(50):
                await flooder.send_str(signal)
            sent += 50
            await _pong(flooder)
        # It reads on at once, through what was buffered, to the close frame.
        code, received = await _read_to_close(slow)
        assert code == SLOW_READER, f"closed with {code} after {received} of {sent} signals"
        await _pong(flooder)  # the sender is not harmed
        await flooder.close()
