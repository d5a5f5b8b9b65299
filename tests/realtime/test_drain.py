"""A node stopping on SIGTERM drains: ``/readyz`` answers 503 at once while everything else is
still served for ``DRAIN_DELAY`` (new sockets are refused, so a balancer sends them
elsewhere), then the stock y-websocket client's socket closes with 1001 (it reconnects), every
edit it made is in PostgreSQL, and the process exits within ``DRAIN_TIMEOUT``."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from pocdojo.crdt import document
from tests.conftest import TEST_JWT_SECRET, Engines
from tests.dojo_helpers import create_dojo
from tests.helpers import signup, wait_until
from tests.realtime.jsclient import JsFactory, eventually
from tests.servers import cli_env, serving

pytestmark = pytest.mark.timeout(120)

DELAY = 3.0
TIMEOUT = 10.0


async def test_a_stopping_node_drains_and_loses_nothing(
    tmp_path: Path, engines: Engines, node: JsFactory, owner_pool: asyncpg.Pool
) -> None:
    env = cli_env(
        DATABASE_URL=engines.database_url,
        REDIS_URL=engines.redis_url,
        JWT_SECRET=TEST_JWT_SECRET,
        DRAIN_DELAY=str(DELAY),
        DRAIN_TIMEOUT=str(TIMEOUT),
        # Longer than the test: only the drain may store the last edits.
        DOJO_PERSIST_INTERVAL="5",
    )
    with serving(tmp_path / "data", env, tmp_path / "logs") as server:
        await asyncio.to_thread(server.wait_until_healthy)
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession(base_url=base) as http:
            host = await signup(http)  # type: ignore[arg-type]
            dojo = await create_dojo(http, host, initialCode="")  # type: ignore[arg-type]
            js = await node("typist", dojo, dojo.host_token)
            await eventually(lambda: js.synced, "sync", report=js.report)
            await js.request("insert", index=0, text="before;")

            server.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            async def not_ready() -> bool:
                async with http.get("/readyz") as resp:
                    return resp.status == 503 and (await resp.json())["status"] == "draining"

            await wait_until(not_ready, within=2)
            # Still serving everything else meanwhile.
            async with http.get("/healthz") as resp:
                assert resp.status == 200
            path = f"/v1/dojos/sessions/{dojo.session_id}"
            async with http.get(path, headers=host.auth) as resp:
                assert resp.status == 200
            # A new socket is refused before its upgrade: the client (or a balancer) retries.
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(dojo.doc(dojo.host_token))
            assert refused.value.status == 503
            # The open socket still works until the delay ends.
            await js.request("insert", index=7, text="during;")
            assert time.monotonic() - signalled < DELAY, "the test was too slow to tell"

            await eventually(lambda: 1001 in js.close_codes, "closed with 1001", within=DELAY + 5)
            assert time.monotonic() - signalled >= DELAY * 0.9
            code = await asyncio.to_thread(server.proc.wait, DELAY + TIMEOUT)
            assert code == 0, server.output()
        assert "drained" in server.stdout + server.stderr, server.output()

    stored = await document.load(owner_pool, UUID(host.tenant_id), UUID(dojo.session_id))
    assert stored.code() == "before;during;"
    assert js.text == "before;during;"
