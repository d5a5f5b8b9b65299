"""A node that loses Redis keeps serving its own clients and catches up when Redis is back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from pocdojo.realtime.sockets import rooms_key
from tests.conftest import Engines
from tests.dojo_helpers import create_dojo, join
from tests.helpers import register, signup, wait_until
from tests.tcpproxy import redis_through_proxy
from tests.yclient import YClient

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def _on(client: TestClient[Any, Any], url: str) -> str:
    """The same socket URL on another in-process node."""
    return f"ws://{client.host}:{client.port}/v1/{url.split('/v1/', 1)[1]}"


async def test_a_node_cut_off_from_redis_serves_locally_and_catches_up(
    make_client: MakeClient, engines: Engines
) -> None:
    async with redis_through_proxy(engines.redis_url) as (proxy, url):
        node_a = await make_client(redis_url=SecretStr(url), dojo_idle_unload=60.0)
        node_b = await make_client(dojo_idle_unload=60.0)
        host = await signup(node_b)
        dojo = await create_dojo(node_b, host, initialCode="base\n")
        tokens = [await join(node_b, dojo, await register(node_b, host)) for _ in range(2)]
        async with aiohttp.ClientSession() as http:
            a1 = await YClient.connect(http, _on(node_a, dojo.doc(tokens[0])))
            a2 = await YClient.connect(http, _on(node_a, dojo.doc(tokens[1])))
            b1 = await YClient.connect(http, _on(node_b, dojo.doc(dojo.host_token)))
            for c in (a1, a2, b1):
                await c.wait_for(lambda c=c: c.code == "base\n")  # type: ignore[misc]

            await proxy.cut()
            assert node_a.app is not None
            bus = node_a.app[rooms_key].bus
            # Node A still serves its own clients while Redis is gone...
            a1.text += "from a during the outage\n"
            await a2.wait_for(lambda: "from a during the outage" in a2.code)
            # ...and node B's clients go on editing too.
            b1.text.insert(0, "from b during the outage\n")
            await wait_until(lambda: not bus.healthy, within=15)
            assert "from a during" not in b1.code

            await proxy.restore()
            expected_parts = ("base\n", "from a during the outage\n", "from b during the outage\n")
            for c in (a1, a2, b1):
                await c.wait_for(
                    lambda c=c: all(p in c.code for p in expected_parts),  # type: ignore[misc]
                    within=20,
                )
            assert a1.code == a2.code == b1.code
            for c in (a1, a2, b1):
                await c.close()
