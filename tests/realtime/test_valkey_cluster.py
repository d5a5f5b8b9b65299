"""Rooms on a Redis Cluster (a real Valkey cluster: three primaries, each with a replica).

Each room's stream and doorbell live in its own hash slot, so rooms spread over the shards;
stock y-websocket clients on two nodes edit rooms on every shard, chat and access changes
cross nodes, and a primary killed mid-edit (its replica promoted) loses no edit: every client
converges, and PostgreSQL holds every marker, mid-run and after the rooms unload and load again.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio.cluster import RedisCluster

from pocdojo.crdt import document
from pocdojo.realtime.bus import Bus, cluster_stream_key
from pocdojo.realtime.peer import CloseCode
from pocdojo.realtime.rooms import Rooms
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, join, on_node
from tests.helpers import Account, register, signup, wait_until
from tests.realtime.jsclient import JsClient, JsFactory, eventually, server_url_of
from tests.valkey_cluster import ValkeyCluster, valkey_cluster
from tests.yclient import next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
OnCluster = Callable[[ValkeyCluster], dict[str, Any]]

pytestmark = pytest.mark.timeout(180)


def _rooms(client: Client) -> Rooms:
    assert client.app is not None
    rooms: Rooms = client.app[rooms_key]
    return rooms


async def _stored(pool: asyncpg.Pool, tenant_id: str, dojo: Dojo) -> str:
    """The document as PostgreSQL holds it now."""
    stored = await document.load(pool, UUID(tenant_id), UUID(dojo.session_id))
    return stored.code()


@dataclass
class Nodes:
    """Two nodes on one cluster, and a host and a guest of one tenant."""

    one: Client
    two: Client
    host: Account
    guest: Account


async def _nodes(make_client: MakeClient, settings: dict[str, Any]) -> Nodes:
    one = await make_client(**settings)
    two = await make_client(**settings)
    host = await signup(one)
    return Nodes(one, two, host, await register(one, host))


@pytest.fixture
async def nodes(
    make_client: MakeClient, on_cluster: OnCluster, redis_cluster: ValkeyCluster
) -> Nodes:
    """Two nodes on the session's cluster."""
    return await _nodes(make_client, on_cluster(redis_cluster))


async def test_rooms_spread_over_the_shards_and_each_is_shared_by_two_nodes(
    nodes: Nodes, redis_cluster: ValkeyCluster, node: JsFactory
) -> None:
    one, two, host, guest = nodes.one, nodes.two, nodes.host, nodes.guest
    # Dojos until there is one on each of the three primaries.
    dojos: dict[int, Dojo] = {}
    for _ in range(60):
        dojo = await create_dojo(one, host, initialCode="")
        dojos.setdefault(redis_cluster.primary_of(cluster_stream_key(dojo.session_id)), dojo)
        if len(dojos) == 3:
            break
    assert len(dojos) == 3, "sixty dojos all landed on fewer than three shards"

    pairs: list[tuple[JsClient, JsClient]] = []
    for i, dojo in enumerate(dojos.values()):
        token = await join(one, dojo, guest)
        on_one = await node(f"one{i}", dojo, dojo.host_token, server_url=server_url_of(dojo))
        on_two = await node(f"two{i}", dojo, token, server_url=on_node(two, server_url_of(dojo)))
        pairs.append((on_one, on_two))
    for i, (on_one, on_two) in enumerate(pairs):
        await eventually(
            lambda a=on_one, b=on_two: a.synced and b.synced,  # type: ignore[misc]
            f"sync {i}",
        )
        await on_one.request("insert", index=0, text=f"<one:{i}>")
        await on_two.request("insert", index=0, text=f"<two:{i}>")
    for i, (on_one, on_two) in enumerate(pairs):
        for js in (on_one, on_two):
            await eventually(
                lambda js=js, i=i: f"<one:{i}>" in js.text and f"<two:{i}>" in js.text,  # type: ignore[misc]
                f"{js.name} has both nodes' edits",
                report=js.report,
            )
        assert on_one.text == on_two.text

    # Each room's stream is on the shard its slot names, holding the edits of both nodes.
    for primary, dojo in dojos.items():
        key = cluster_stream_key(dojo.session_id)
        assert int(redis_cluster.call(primary, "xlen", key).strip()) >= 2

    # Chat crosses nodes too.
    dojo = next(iter(dojos.values()))
    async with aiohttp.ClientSession() as http:
        ev_one = await http.ws_connect(dojo.events(dojo.host_token))
        ev_two = await http.ws_connect(on_node(two, dojo.events(await join(one, dojo, guest))))
        await next_event(ev_one, "welcome")
        await next_event(ev_two, "welcome")
        await ev_one.send_str(json.dumps({"type": "chat", "text": "hello, other shard"}))
        assert (await next_event(ev_two, "chat"))["text"] == "hello, other shard"
        await ev_one.close()
        await ev_two.close()
    assert _rooms(one).bus.healthy
    assert _rooms(two).bus.healthy


async def test_a_deactivation_on_one_node_closes_the_stock_client_on_another(
    nodes: Nodes, node: JsFactory
) -> None:
    """Access changes ride a plain channel, which a cluster carries to every node."""
    one, two, admin, guest = nodes.one, nodes.two, nodes.host, nodes.guest
    dojo = await create_dojo(one, admin, initialCode="start\n")
    token = await join(one, dojo, guest)
    js = await node("guest", dojo, token, server_url=on_node(two, server_url_of(dojo)))
    await eventually(lambda: js.synced and js.text == "start\n", "the guest's sync")

    resp = await one.patch(
        f"/v1/users/{guest.user_id}", headers=admin.auth, json={"isActive": False}
    )
    assert resp.status == 200, await resp.text()
    await eventually(lambda: js.terminal is not None, "a final close", within=2.0)
    assert js.terminal is not None
    assert js.terminal["code"] == CloseCode.FORBIDDEN, js.report()


async def test_two_buses_on_a_cluster_deliver_every_rooms_entries_in_order(
    redis_cluster: ValkeyCluster,
) -> None:
    """Two buses (two nodes) on the cluster, many rooms over every shard: each entry one
    publishes reaches the other, in order, none back to its own node; and after the script
    cache is flushed on every primary (as on a promoted replica), publishing goes on."""
    clients = [RedisCluster.from_url(redis_cluster.url) for _ in range(2)]
    one, two = (Bus(client) for client in clients)
    rooms = [f"bus-{uuid.uuid4().hex}" for _ in range(24)]
    got: dict[str, list[bytes]] = {room: [] for room in rooms}
    await one.start()
    await two.start()
    try:
        for room in rooms:
            one.subscribe(room, await one.position(room), _collect([]), _nothing, _nothing)
            two.subscribe(room, await two.position(room), _collect(got[room]), _nothing, _nothing)
        assert len({redis_cluster.primary_of(cluster_stream_key(room)) for room in rooms}) == 3
        for n in range(5):
            if n == 3:
                for port in redis_cluster.ports:
                    redis_cluster.call(port, "script", "flush")
            for room in rooms:
                one.publish(room, b"e", f"{room}:{n}".encode())
            await wait_until(lambda: one._outbox.empty())
        await wait_until(lambda: all(len(got[room]) == 5 for room in rooms), within=15)
        assert all(got[room] == [f"{room}:{n}".encode() for n in range(5)] for room in rooms)
        assert one.healthy
        assert two.healthy
    finally:
        for bus in (one, two):
            await bus.stop()
        for client in clients:
            await client.aclose()


def _collect(into: list[bytes]) -> Callable[[bytes, bytes, bytes], Awaitable[None]]:
    async def on_message(kind: bytes, data: bytes, tag: bytes) -> None:
        into.append(data)

    return on_message


async def _nothing() -> None:
    return None


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[ValkeyCluster]:
    """A cluster of this test's own, as the test kills one of its nodes."""
    with valkey_cluster(tmp_path / "cluster") as started:
        yield started


MARKERS = 40  # per client
KILL_AT = 12  # the primary dies once each client typed this many


@pytest.mark.parametrize("fault", ["primary killed", "slot moved"])
async def test_a_shard_change_mid_edit_loses_no_edit(
    own_cluster: ValkeyCluster,  # first: it outlives the nodes
    make_client: MakeClient,
    on_cluster: OnCluster,
    node: JsFactory,
    owner_pool: asyncpg.Pool,
    fault: str,
) -> None:
    """The room's primary is SIGKILLed (its replica takes over), or its slot is moved to
    another primary (as resharding does), while two stock clients on two nodes type."""
    nodes = await _nodes(make_client, {**on_cluster(own_cluster), "dojo_idle_unload": 0.5})
    one, two, host, guest = nodes.one, nodes.two, nodes.host, nodes.guest
    dojo = await create_dojo(one, host, initialCode="")
    token = await join(one, dojo, guest)
    typists = [
        await node("one", dojo, dojo.host_token, server_url=server_url_of(dojo)),
        await node("two", dojo, token, server_url=on_node(two, server_url_of(dojo))),
    ]
    for js in typists:
        await eventually(lambda js=js: js.synced, f"{js.name} synced", report=js.report)  # type: ignore[misc]
    primary = own_cluster.primary_of(cluster_stream_key(dojo.session_id))
    await asyncio.to_thread(own_cluster.wait_ok)  # replicas in sync, so one can take over

    async def type_markers(js: JsClient, start: int, stop: int) -> None:
        for n in range(start, stop):
            await js.request("insert", index=0, text=f"<{js.name}:{n}>")
            await asyncio.sleep(0.05)

    await asyncio.gather(*(type_markers(js, 0, KILL_AT) for js in typists))
    if fault == "primary killed":
        await asyncio.to_thread(own_cluster.kill, primary)
    else:
        other = next(
            port for port in own_cluster.ports if port != primary and _is_primary(own_cluster, port)
        )
        await asyncio.to_thread(own_cluster.move_slot, cluster_stream_key(dojo.session_id), other)
    # Typing goes on while the replica is promoted (about two seconds), or on the new
    # primary, and after.
    await asyncio.gather(*(type_markers(js, KILL_AT, MARKERS) for js in typists))

    expected = {f"<{js.name}:{n}>" for js in typists for n in range(MARKERS)}
    for js in typists:
        await eventually(
            lambda js=js: all(m in js.text for m in expected),  # type: ignore[misc]
            f"{js.name} has every marker",
            within=30,
            report=lambda js=js: (
                f"missing {sorted(m for m in expected if m not in js.text)}\n"  # type: ignore[misc]
                + f"buses healthy: {_rooms(one).bus.healthy}, {_rooms(two).bus.healthy}\n"
                + js.report()
            ),
        )
    assert own_cluster.primary_of(cluster_stream_key(dojo.session_id)) != primary
    # Both buses came back on the promoted replica.
    await wait_until(lambda: _rooms(one).bus.healthy and _rooms(two).bus.healthy, within=20)

    # PostgreSQL holds every marker while the clients are still connected...
    async def all_stored() -> bool:
        code = await _stored(owner_pool, host.tenant_id, dojo)
        return all(m in code for m in expected)

    await wait_until(all_stored, within=15)
    # ...and after every client left and both nodes unloaded the room.
    for js in typists:
        await js.stop()
    await wait_until(lambda: not _rooms(one).rooms and not _rooms(two).rooms, within=20)
    code = await _stored(owner_pool, host.tenant_id, dojo)
    assert all(m in code for m in expected)
    assert len(code) == sum(len(m) for m in expected)  # nothing twice
    # A client loading the room again gets it whole.
    again = await node("again", dojo, dojo.host_token, server_url=on_node(two, server_url_of(dojo)))
    await eventually(lambda: again.synced and again.text == code, "the reloaded room")


def _is_primary(cluster: ValkeyCluster, port: int) -> bool:
    return cluster.info(port, "replication").get("role", "").strip() == "master"
