"""Several ``pocdojo serve`` processes on one PostgreSQL and Redis act as one server.

Real processes, so that a node can be killed with SIGKILL mid-edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TEST_JWT_SECRET, Engines
from tests.helpers import PASSWORD, unique
from tests.servers import Server, cli_env, serving
from tests.yclient import YClient, next_event

pytestmark = pytest.mark.timeout(180)


def _env(engines: Engines) -> dict[str, str]:
    variables = {
        "DATABASE_URL": engines.database_url,
        "REDIS_URL": engines.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DOJO_IDLE_UNLOAD": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    if engines.database_app_url:
        variables["DATABASE_APP_URL"] = engines.database_app_url
    return cli_env(**variables)


@contextlib.contextmanager
def cluster(engines: Engines, tmp_path: Path, count: int, tag: str) -> Iterator[list[Server]]:
    env = _env(engines)
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(serving(tmp_path / f"{tag}{i}", env, tmp_path / f"{tag}{i}-logs"))
            for i in range(count)
        ]
        for node in nodes:
            node.wait_until_healthy()
        yield nodes


def base(node: Server) -> str:
    return f"http://127.0.0.1:{node.port}"


def on(node: Server, url: str) -> str:
    """The same socket URL, on ``node``."""
    path = url.split("/v1/", 1)[1]
    return f"ws://127.0.0.1:{node.port}/v1/{path}"


async def api(
    http: aiohttp.ClientSession, node: Server, method: str, path: str, body: Any = None,
    token: str | None = None,
) -> Any:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, base(node) + path, json=body, headers=headers) as resp:
        data = await resp.json()
        assert resp.status < 300, (resp.status, data)
        return data


async def _setup(http: aiohttp.ClientSession, node: Server) -> dict[str, Any]:
    """A tenant, a second user, a POC and a dojo both users joined."""
    domain, admin, guest = f"{unique('d')}.example", unique("a"), unique("g")
    await api(http, node, "POST", "/v1/tenants", {
        "name": "Cluster Labs", "domain": domain, "contactEmail": f"ops@{domain}",
        "plan": "standard",
        "admin": {"username": admin, "email": f"{admin}@{domain}", "fullName": "Ada",
                  "password": PASSWORD},
    })  # fmt: skip
    login = await api(http, node, "POST", "/v1/auth/login",
                      {"username": admin, "password": PASSWORD, "tenantId": domain})  # fmt: skip
    token = login["token"]
    await api(http, node, "POST", "/v1/users/register", {
        "username": guest, "password": PASSWORD, "email": f"{guest}@{domain}",
        "fullName": "Gus", "tenantId": login["tenantId"], "role": "user",
    }, token)  # fmt: skip
    guest_body = {"username": guest, "password": PASSWORD, "tenantId": domain}
    guest_login = await api(http, node, "POST", "/v1/auth/login", guest_body)
    poc = await api(http, node, "POST", "/v1/pocs", {
        "title": "Cluster POC", "description": "d", "language": "Go", "tags": ["x"],
        "userId": login["userId"], "tenantId": login["tenantId"],
    }, token)  # fmt: skip
    dojo = await api(http, node, "POST", "/v1/dojos/sessions",
                     {"title": "Cluster kata", "pocId": poc["pocId"], "initialCode": "start\n"},
                     token)  # fmt: skip
    joined = await api(http, node, "POST", f"/v1/dojos/sessions/{dojo['sessionId']}/join",
                       {"joinCode": dojo["joinCode"]}, guest_login["token"])  # fmt: skip
    return {"dojo": dojo, "host": dojo["participantToken"], "guest": joined["participantToken"],
            "token": token}  # fmt: skip


async def test_clients_on_two_nodes_converge_with_awareness_and_chat(
    engines: Engines, tmp_path: Path
) -> None:
    with cluster(engines, tmp_path, 2, "n") as (a, b):
        async with aiohttp.ClientSession() as http:
            s = await _setup(http, a)
            doc_url, events_url = s["dojo"]["docUrl"], s["dojo"]["eventsUrl"]
            one = await YClient.connect(http, on(a, doc_url) + f"?token={s['host']}")
            two = await YClient.connect(http, on(b, doc_url) + f"?token={s['guest']}")
            await one.wait_for(lambda: one.code == "start\n")
            await two.wait_for(lambda: two.code == "start\n")
            for i in range(10):
                one.text += f"a{i}\n"
                two.text.insert(0, f"b{i}\n")
            await one.wait_for(lambda: one.code.count("\n") == 21)
            await two.wait_for(lambda: two.code == one.code)
            assert all(f"a{i}\n" in two.code and f"b{i}\n" in one.code for i in range(10))

            one.set_awareness({"user": {"name": "host"}, "cursor": 3})
            await two.wait_for(lambda: {"user": {"name": "host"}, "cursor": 3}
                               in two.remote_awareness.values())  # fmt: skip

            ev_a = await http.ws_connect(on(a, events_url) + f"?token={s['host']}")
            ev_b = await http.ws_connect(on(b, events_url) + f"?token={s['guest']}")
            await next_event(ev_a, "welcome")
            await next_event(ev_b, "welcome")
            await ev_a.send_str(json.dumps({"type": "chat", "text": "hello from node a"}))
            chat = await next_event(ev_b, "chat")
            assert chat["text"] == "hello from node a"
            for c in (one, two):
                await c.close()
            await ev_a.close()
            await ev_b.close()


async def test_kill_9_of_a_node_loses_no_accepted_edit_and_restarts_keep_everything(
    engines: Engines, tmp_path: Path
) -> None:
    with cluster(engines, tmp_path, 2, "k") as (a, b):
        async with aiohttp.ClientSession() as http:
            s = await _setup(http, a)
            doc_url, events_url = s["dojo"]["docUrl"], s["dojo"]["eventsUrl"]
            writer = await YClient.connect(http, on(a, doc_url) + f"?token={s['host']}")
            reader = await YClient.connect(http, on(b, doc_url) + f"?token={s['guest']}")
            await writer.wait_for(lambda: writer.code == "start\n")
            ev = await http.ws_connect(on(a, events_url) + f"?token={s['host']}")
            await next_event(ev, "welcome")
            await ev.send_str(json.dumps({"type": "chat", "text": "before the crash"}))
            await next_event(ev, "chat")

            for i in range(150):
                writer.text += f"w{i};"
                if i == 100:
                    a.proc.kill()  # SIGKILL, mid-stream: no flush, no goodbye
                await asyncio.sleep(0)
            a.proc.wait(timeout=30)
            expected = "start\n" + "".join(f"w{i};" for i in range(150))
            assert writer.code == expected
            # The writer's client reconnects to the surviving node and resyncs.
            await writer.wait_closed()
            await writer.reconnect(http, on(b, doc_url) + f"?token={s['host']}")
            await reader.wait_for(lambda: reader.code == expected, within=20)
            await writer.wait_for(lambda: writer.code == expected)
            await writer.close()
            await reader.close()
            await ev.close()

    # Every node restarted: the document and the chat are intact.
    with cluster(engines, tmp_path, 2, "r") as (c, d):
        async with aiohttp.ClientSession() as http:
            fresh = await YClient.connect(http, on(d, doc_url) + f"?token={s['guest']}")
            await fresh.wait_for(lambda: fresh.code == expected, within=20)
            await fresh.close()
            history = await api(http, c, "GET",
                                f"/v1/dojos/sessions/{s['dojo']['sessionId']}/chat",
                                token=s["token"])  # fmt: skip
            assert [m["text"] for m in history["messages"]] == ["before the crash"]
