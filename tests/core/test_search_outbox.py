"""The search outbox: written with the change, drained into an index, retried on failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from pocdojo.core.db import open_pool
from pocdojo.core.db.pocs import Poc
from pocdojo.core.search.outbox import drain_once
from tests.conftest import Engines
from tests.helpers import Account, error_of, signup

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]
UNREACHABLE = "http://127.0.0.1:1"


class RecordingIndex:
    """Stands in for the external index: keeps what it is given, or fails on demand."""

    def __init__(self) -> None:
        self.applied: list[Poc] = []
        self.fail = False

    async def apply(self, pocs: list[Poc]) -> None:
        if self.fail:
            raise ConnectionError("index down")
        self.applied.extend(pocs)


@pytest.fixture
async def pool(engines: Engines) -> AsyncIterator[Any]:
    pool = await open_pool(engines.database_url, engines.database_app_url, max_size=2)
    yield pool
    await pool.close()


async def _create(client: TestClient[Any, Any], admin: Account, title: str) -> str:
    resp = await client.post(
        "/v1/pocs",
        headers=admin.auth,
        json={
            "title": title,
            "description": "outbox",
            "language": "Go",
            "tags": ["outbox"],
            "userId": admin.user_id,
            "tenantId": admin.tenant_id,
        },
    )
    assert resp.status == 201, await resp.text()
    poc_id: str = (await resp.json())["pocId"]
    return poc_id


async def _outbox_rows(engines: Engines, tenant_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(engines.database_url)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT poc_id, attempts, last_error FROM search_outbox WHERE tenant_id = $1",
            tenant_id,
        )
        return rows
    finally:
        await conn.close()


async def _make_due(engines: Engines, tenant_id: str) -> None:
    conn = await asyncpg.connect(engines.database_url)
    try:
        await conn.execute(
            "UPDATE search_outbox SET next_try = now() WHERE tenant_id = $1", tenant_id
        )
    finally:
        await conn.close()


async def _drain_all(pool: Any, index: RecordingIndex) -> None:
    while await drain_once(pool, index):
        pass


async def test_changes_wait_in_the_outbox_until_the_index_takes_them(
    make_client: MakeClient, engines: Engines, pool: Any
) -> None:
    client = await make_client(opensearch_url=UNREACHABLE)
    admin = await signup(client)
    kept = await _create(client, admin, "kept")
    gone = await _create(client, admin, "gone")
    resp = await client.delete(f"/v1/pocs/{gone}", headers=admin.auth)
    assert resp.status == 200
    # Stop the app (and its drainer, which cannot reach the unreachable cluster).
    await client.close()

    rows = await _outbox_rows(engines, admin.tenant_id)
    assert sorted(str(r["poc_id"]) for r in rows) == sorted([kept, gone, gone])

    index = RecordingIndex()
    index.fail = True
    await _make_due(engines, admin.tenant_id)
    await _drain_all(pool, index)
    rows = await _outbox_rows(engines, admin.tenant_id)
    assert len(rows) == 3, "a failed index update must keep every change"
    assert all(r["attempts"] >= 1 and "index down" in r["last_error"] for r in rows)

    index.fail = False
    await _make_due(engines, admin.tenant_id)
    await _drain_all(pool, index)
    assert await _outbox_rows(engines, admin.tenant_id) == []
    states = {str(p.id): p.status for p in index.applied if str(p.tenant_id) == admin.tenant_id}
    assert states == {kept: "active", gone: "deleted"}


async def test_failed_rows_are_not_retried_before_their_backoff(
    make_client: MakeClient, engines: Engines, pool: Any
) -> None:
    client = await make_client(opensearch_url=UNREACHABLE)
    admin = await signup(client)
    await _create(client, admin, "later")
    await client.close()
    index = RecordingIndex()
    index.fail = True
    await _make_due(engines, admin.tenant_id)
    await _drain_all(pool, index)
    index.fail = False
    await _drain_all(pool, index)
    assert len(await _outbox_rows(engines, admin.tenant_id)) == 1
    assert not [p for p in index.applied if str(p.tenant_id) == admin.tenant_id]


async def test_without_opensearch_nothing_is_queued(
    client: TestClient[Any, Any], admin: Account, engines: Engines
) -> None:
    await _create(client, admin, "plain")
    assert await _outbox_rows(engines, admin.tenant_id) == []


async def test_search_answers_503_when_the_cluster_is_down(make_client: MakeClient) -> None:
    client = await make_client(opensearch_url=UNREACHABLE)
    admin = await signup(client)
    resp = await client.get("/v1/pocs/search", params={"q": "x"}, headers=admin.auth)
    assert resp.status == 503
    assert (await error_of(resp))["code"] == "unavailable"
