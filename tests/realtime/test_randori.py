"""Randori with stock y-websocket clients on two nodes: the pilot changes on time, only the
pilot's typing stays (in every client and in PostgreSQL), and nobody reconnects.

Everyone types in every turn. What a non-pilot types is taken and undone by the server at
once, so their own editor goes back to the shared text and their client never diverges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from pocdojo.crdt import document
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import create_dojo, join
from tests.helpers import register, signup, wait_until
from tests.realtime.jsclient import JsClient, JsFactory, eventually, report_of, server_url_of
from tests.yclient import next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

pytestmark = pytest.mark.timeout(120)

PERIOD = 3  # seconds a turn lasts
ON_TIME = 0.5  # how late a turn's announcement may arrive


def _on(client: Client, url: str) -> str:
    """The same socket URL on another in-process node."""
    return f"ws://{client.host}:{client.port}/v1/{url.split('/v1/', 1)[1]}"


async def test_only_the_pilot_types_and_the_turns_change_on_time(
    make_client: MakeClient, node: JsFactory
) -> None:
    one, two = await make_client(), await make_client()
    host = await signup(one)
    dojo = await create_dojo(one, host, initialCode="")
    guests = [await register(one, host) for _ in range(2)]
    tokens = [dojo.host_token] + [await join(one, dojo, g) for g in guests]
    users = [host.user_id] + [g.user_id for g in guests]
    nodes = [one, one, two]  # the second guest's sockets are on the other node
    names = ["host", "left", "right"]
    clients: list[JsClient] = [
        await node(name, dojo, token, server_url=_on(at, server_url_of(dojo)))
        for name, token, at in zip(names, tokens, nodes, strict=True)
    ]
    report = report_of(*clients)
    await eventually(lambda: all(c.synced for c in clients), "sync", report=report)
    async with aiohttp.ClientSession() as http:
        events = [
            await http.ws_connect(_on(at, dojo.events(token)))
            for token, at in zip(tokens, nodes, strict=True)
        ]
        for ws in events:
            assert (await next_event(ws, "welcome"))["randori"] is None

        start = {"type": "randori", "action": "start", "periodSeconds": PERIOD}
        await events[0].send_str(json.dumps(start))
        kept: list[str] = []
        for turn in range(4):
            announced = [await next_event(ws, "randori", within=PERIOD + 5) for ws in events]
            arrived = time.time()
            for event in announced:
                assert event["active"] is True
                assert event["turn"] == turn
                assert event["order"] == users
                assert event["pilot"] == users[turn % 3]
                assert event["copilot"] == users[(turn + 1) % 3]
            ends = datetime.fromisoformat(announced[0]["turnEndsAt"]).timestamp()
            if turn:  # on time: at the end of the turn before, within ON_TIME
                assert abs(arrived - (ends - PERIOD)) < ON_TIME, (arrived, ends)
            pilot = clients[turn % 3]
            for c in clients:
                await c.request("insert", index=0, text=f"[{turn}:{c.name}]")
            kept.insert(0, f"[{turn}:{pilot.name}]")
            expected = "".join(kept)
            await eventually(
                lambda expected=expected: all(c.text == expected for c in clients),  # type: ignore[misc]
                f"turn {turn}: only {pilot.name}'s typing, everywhere",
                report=report,
            )

        await events[0].send_str(json.dumps({"type": "randori", "action": "stop"}))
        for ws in events:
            assert (await next_event(ws, "randori"))["active"] is False
        await clients[2].request("insert", index=0, text="[free]")
        expected = "[free]" + "".join(kept)
        await eventually(lambda: all(c.text == expected for c in clients), "free typing")

        assert all(c.close_codes == [] for c in clients), report()
        assert one.app is not None
        pool = one.app[rooms_key].pool

        async def stored() -> bool:
            doc = await document.load(pool, UUID(host.tenant_id), UUID(dojo.session_id))
            return doc.code() == expected

        await wait_until(stored)
        for ws in events:
            await ws.close()


async def test_only_the_host_runs_randori(client: Client, node: JsFactory) -> None:
    host = await signup(client)
    dojo = await create_dojo(client, host)
    token = await join(client, dojo, await register(client, host))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(dojo.events(token))
        await next_event(ws, "welcome")
        await ws.send_str(json.dumps({"type": "randori", "action": "start"}))
        error = await next_event(ws, "error")
        assert error["code"] == "forbidden"
        bad = {"type": "randori", "action": "start", "periodSeconds": 0}
        host_ws = await http.ws_connect(dojo.events(dojo.host_token))
        await next_event(host_ws, "welcome")
        await host_ws.send_str(json.dumps(bad))
        assert (await next_event(host_ws, "error"))["code"] == "invalid_message"
        await ws.close()
        await host_ws.close()
