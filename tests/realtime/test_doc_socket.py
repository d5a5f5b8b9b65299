"""The document socket with Python y-websocket clients: sync, roles, limits, persistence."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import create_dojo, join
from tests.helpers import Account, register, signup, wait_until
from tests.yclient import YClient, edit_reaches_others

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


async def test_two_clients_start_from_the_initial_code_and_converge(
    client: Client, admin: Account
) -> None:
    dojo = await create_dojo(client, admin, initialCode="def kata():\n    pass\n")
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        a = await YClient.connect(http, dojo.doc(dojo.host_token))
        b = await YClient.connect(http, dojo.doc(token))
        await a.wait_for(lambda: a.code.startswith("def kata"))
        await b.wait_for(lambda: b.code.startswith("def kata"))
        a.text.insert(0, "# host\n")
        b.text += "# guest\n"
        expected = "# host\ndef kata():\n    pass\n# guest\n"
        await a.wait_for(lambda: a.code == expected)
        await b.wait_for(lambda: b.code == expected)
        await a.close()
        await b.close()


async def test_an_observers_edits_reach_no_one(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, initialCode="x = 1\n")
    watcher = await register(client, admin)
    token = await join(client, dojo, watcher, role="observer")
    async with aiohttp.ClientSession() as http:
        host = await YClient.connect(http, dojo.doc(dojo.host_token))
        observer = await YClient.connect(http, dojo.doc(token))
        await observer.wait_for(lambda: observer.code == "x = 1\n")
        # The observer still receives the host's edits; neither the host nor a client syncing
        # from the server sees the observer's.
        url = dojo.doc(dojo.host_token)
        assert not await edit_reaches_others(http, observer, host, url, "# sneaky\n")
        for c in (host, observer):
            await c.close()


async def test_a_malformed_frame_closes_only_that_socket(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, initialCode="keep\n")
    async with aiohttp.ClientSession() as http:
        good = await YClient.connect(http, dojo.doc(dojo.host_token))
        await good.wait_for(lambda: good.code == "keep\n")
        for frame in (b"\x00\x02\x05garbage", b"\x09", b"", b"\x00"):
            bad = await http.ws_connect(dojo.doc(dojo.host_token))
            await bad.send_bytes(frame)
            msg = await bad.receive()
            while msg.type == aiohttp.WSMsgType.BINARY:
                msg = await bad.receive()
            assert bad.close_code == CloseCode.MALFORMED, frame
        bad = await http.ws_connect(dojo.doc(dojo.host_token))
        await bad.send_str("hello")
        while (await bad.receive()).type == aiohttp.WSMsgType.BINARY:
            pass
        assert bad.close_code == CloseCode.MALFORMED
        good.text += "still here\n"
        other = await YClient.connect(http, dojo.doc(dojo.host_token))
        await other.wait_for(lambda: other.code == "keep\nstill here\n")
        await good.close()
        await other.close()


@pytest.mark.parametrize("mangle", ["missing", "garbage", "other-session"])
async def test_sockets_refuse_bad_tokens(client: Client, admin: Account, mangle: str) -> None:
    dojo = await create_dojo(client, admin)
    other = await create_dojo(client, admin)
    token = {"missing": "", "garbage": "x.y.z", "other-session": other.host_token}[mangle]
    expected = CloseCode.FORBIDDEN if mangle == "other-session" else CloseCode.UNAUTHORIZED
    async with aiohttp.ClientSession() as http:
        for url in (dojo.doc(token), dojo.events(token)):
            ws = await http.ws_connect(url)
            await ws.receive()
            assert ws.close_code == expected


async def test_another_tenants_session_does_not_exist(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    async with aiohttp.ClientSession() as http:
        # A valid token of tenant B used on tenant A's session id.
        url = dojo.doc_url + f"?token={theirs.host_token}"
        ws = await http.ws_connect(url)
        await ws.receive()
        assert ws.close_code == CloseCode.FORBIDDEN


async def test_ending_the_session_disconnects_everyone(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, initialCode="a\n")
    async with aiohttp.ClientSession() as http:
        c = await YClient.connect(http, dojo.doc(dojo.host_token))
        await c.wait_for(lambda: c.code == "a\n")
        c.text += "b\n"
        await c.wait_for(lambda: c.code == "a\nb\n")
        resp = await client.post(
            f"/v1/dojos/sessions/{dojo.session_id}/end", headers=admin.auth, json={}
        )
        assert resp.status == 200, await resp.text()
        assert await c.wait_closed() == CloseCode.ENDED
        again = await http.ws_connect(dojo.doc(dojo.host_token))
        await again.receive()
        assert again.close_code == CloseCode.ENDED
    resp = await client.get(f"/v1/dojos/sessions/{dojo.session_id}/snapshots", headers=admin.auth)
    snapshots = (await resp.json())["snapshots"]
    assert snapshots[-1]["reason"] == "end"
    assert snapshots[-1]["code"] == "a\nb\n"


async def test_the_document_survives_unload_and_reload(
    make_client: MakeClient,
) -> None:
    client = await make_client(dojo_idle_unload=0.0)
    admin = await signup(client)
    dojo = await create_dojo(client, admin, initialCode="start\n")
    rooms = client.app[rooms_key] if client.app else None
    assert rooms is not None
    async with aiohttp.ClientSession() as http:
        c = await YClient.connect(http, dojo.doc(dojo.host_token))
        await c.wait_for(lambda: c.code == "start\n")
        for i in range(20):
            c.text += f"line {i}\n"
        expected = "start\n" + "".join(f"line {i}\n" for i in range(20))
        await c.close()
        await wait_until(lambda: not rooms.rooms)
        again = await YClient.connect(http, dojo.doc(dojo.host_token))
        await again.wait_for(lambda: again.code == expected)
        await again.close()


async def test_a_message_over_the_limit_closes_with_4413(
    make_client: MakeClient,
) -> None:
    client = await make_client(ws_max_message_bytes=2048)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    async with aiohttp.ClientSession() as http:
        c = await YClient.connect(http, dojo.doc(dojo.host_token))
        await c.synced.wait()
        c.text += "x" * 5000
        assert await c.wait_closed() == CloseCode.TOO_LARGE


async def test_updates_past_the_rate_are_slowed_and_merged_never_cut_off(
    make_client: MakeClient,
) -> None:
    client = await make_client(ws_updates_per_second=20, ws_update_burst=5)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    assert client.app is not None
    updates = client.app[rooms_key].metrics.updates
    async with aiohttp.ClientSession() as http:
        fast = await YClient.connect(http, dojo.doc(dojo.host_token))
        other = await YClient.connect(http, dojo.doc(dojo.host_token))
        await fast.synced.wait()
        before = updates._value.get()
        for i in range(300):
            fast.text += f"{i};"
        expected = "".join(f"{i};" for i in range(300))
        await other.wait_for(lambda: other.code == expected)
        # Far fewer than 300 applied updates: past the burst, each holds what waited.
        assert updates._value.get() - before < 100
        assert not fast.ws.closed
        fast.text += "still here"
        await other.wait_for(lambda: other.code.endswith("still here"))
        await fast.close()
        await other.close()


async def test_vanished_clients_leak_nothing(make_client: MakeClient) -> None:
    client = await make_client(dojo_idle_unload=0.0)
    admin = await signup(client)
    dojo = await create_dojo(client, admin, initialCode="z\n")
    assert client.app is not None
    rooms = client.app[rooms_key]
    before = len(asyncio.all_tasks())
    async with aiohttp.ClientSession() as http:
        clients = [await YClient.connect(http, dojo.doc(dojo.host_token)) for _ in range(5)]
        for c in clients:
            await c.wait_for(functools.partial(_has_code, c, "z\n"))
        # Vanish mid-stream: drop the TCP connections without a close handshake.
        for c in clients:
            c.text += "bye"
            transport = c.ws._response.connection.transport  # type: ignore[union-attr]
            assert transport is not None
            transport.abort()
    await wait_until(lambda: not rooms.rooms and len(asyncio.all_tasks()) <= before)
    assert rooms.metrics.connections.labels("doc")._value.get() == 0


def _has_code(client: YClient, code: str) -> bool:
    return client.code == code


async def test_deletions_reach_others_and_are_persisted(make_client: MakeClient) -> None:
    """A deletion adds nothing to the state vector; it must still be relayed and stored."""
    client = await make_client(dojo_idle_unload=0.0)
    admin = await signup(client)
    dojo = await create_dojo(client, admin, initialCode="keep DROP keep\n")
    assert client.app is not None
    rooms = client.app[rooms_key]
    async with aiohttp.ClientSession() as http:
        a = await YClient.connect(http, dojo.doc(dojo.host_token))
        b = await YClient.connect(http, dojo.doc(dojo.host_token))
        for c in (a, b):
            await c.wait_for(lambda c=c: c.code == "keep DROP keep\n")  # type: ignore[misc]
        del a.text[5:10]
        await b.wait_for(lambda: b.code == "keep keep\n")
        await a.close()
        await b.close()
        await wait_until(lambda: not rooms.rooms)
        again = await YClient.connect(http, dojo.doc(dojo.host_token))
        await again.wait_for(lambda: again.code == "keep keep\n")
        await again.close()


async def test_realtime_metrics_are_exported(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, initialCode="m\n")
    async with aiohttp.ClientSession() as http:
        a = await YClient.connect(http, dojo.doc(dojo.host_token))
        b = await YClient.connect(http, dojo.doc(dojo.host_token))
        for c in (a, b):
            await c.wait_for(lambda c=c: c.code == "m\n")  # type: ignore[misc]
        a.text += "metric\n"
        await b.wait_for(lambda: b.code == "m\nmetric\n")
        text = await (await client.get("/metrics")).text()
        await a.close()
        await b.close()
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["pocdojo_rooms_active"] >= 1
    assert values['pocdojo_ws_connections{socket="doc"}'] >= 2
    assert values["pocdojo_doc_updates_total"] >= 1
    assert values["pocdojo_ws_received_bytes_total"] > 0
    assert values["pocdojo_ws_sent_bytes_total"] > 0
    assert values["pocdojo_fanout_latency_seconds_count"] >= 1
    assert "pocdojo_persist_lag_seconds_count" in values


@pytest.mark.parametrize("frame", ["0000", "0001", "0002", "01"])
async def test_a_frame_with_no_payload_closes_with_4400(client: Client, frame: str) -> None:
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    async with aiohttp.ClientSession() as http:
        c = await YClient.connect(http, dojo.doc(dojo.host_token))
        await c.synced.wait()
        await c.ws.send_bytes(bytes.fromhex(frame))
        assert await c.wait_closed() == CloseCode.MALFORMED


async def test_a_garbled_sync_request_waiting_for_the_rate_closes_with_4400(
    make_client: MakeClient,
) -> None:
    client = await make_client(ws_updates_per_second=1, ws_update_burst=1)
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    async with aiohttp.ClientSession() as http:
        c = await YClient.connect(http, dojo.doc(dojo.host_token))
        await c.synced.wait()
        await c.ws.send_bytes(bytes.fromhex("00000100"))
        await c.ws.send_bytes(bytes.fromhex("00000105"))
        assert await c.wait_closed() == CloseCode.MALFORMED


async def test_code_holding_a_nul_is_recorded_when_the_session_ends(client: Client) -> None:
    admin = await signup(client)
    dojo = await create_dojo(client, admin)
    async with aiohttp.ClientSession() as http:
        c = await YClient.connect(http, dojo.doc(dojo.host_token))
        await c.synced.wait()
        c.text += "a\x00b"
        assert client.app is not None
        rooms = client.app[rooms_key]
        await wait_until(lambda: any(r.code() == "a\x00b" for r in rooms.rooms.values()))
        resp = await client.post(
            f"/v1/dojos/sessions/{dojo.session_id}/end", headers=admin.auth, json={}
        )
        assert resp.status == 200, await resp.text()
        await c.close()
    resp = await client.get(f"/v1/dojos/sessions/{dojo.session_id}/snapshots", headers=admin.auth)
    snapshots = (await resp.json())["snapshots"]
    assert snapshots[-1]["reason"] == "end"
    assert snapshots[-1]["code"] == "a\ufffdb"
