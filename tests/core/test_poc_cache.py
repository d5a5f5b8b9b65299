"""The POC cache: views buffered in Redis and flushed to the database, Redis outages, and
invalidation on change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from pocdojo.core import appkeys
from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db import tenant_tx
from tests.conftest import Engines
from tests.helpers import signup
from tests.poc_helpers import (
    Client,
    create_poc,
    db_poc,
    delete_poc,
    expect_error,
    get_ok,
    read_poc,
    update_poc,
)

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def make_client(make_client: MakeClient, redis_mode: dict[str, Any]) -> MakeClient:
    """Every test here on one Redis and on a cluster."""

    async def build(**overrides: Any) -> TestClient[Any, Any]:
        return await make_client(**{**redis_mode, **overrides})

    return build


# Long enough that the application's own flusher never runs during a test.
NO_BACKGROUND_FLUSH = 3600.0


async def db_views(engines: Engines, poc_id: str) -> int:
    views: int = (await db_poc(engines.database_url, poc_id))["view_count"]
    return views


async def flush(client: Client) -> int:
    """Run the application's view flush now."""
    app = client.app
    assert app is not None
    written: int = await app[appkeys.poc_cache_key].flush_views(app[appkeys.db_pool_key])
    return written


async def test_views_are_buffered_then_flushed_once(
    make_client: MakeClient, engines: Engines
) -> None:
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH)
    admin = await signup(client)
    poc = await create_poc(client, admin)
    poc_id = poc["pocId"]
    seen = [(await read_poc(client, admin, poc_id))["metrics"]["views"] for _ in range(4)]
    assert seen == [1, 2, 3, 4]
    assert await db_views(engines, poc_id) == 0  # still buffered in Redis

    assert await flush(client) >= 4
    assert await db_views(engines, poc_id) == 4
    assert (await get_ok(client, admin, "/v1/pocs/mine"))["pocs"][0]["metrics"]["views"] == 4

    # The buffer was emptied and the cached row dropped: the next read is the fifth view.
    assert (await read_poc(client, admin, poc_id))["metrics"]["views"] == 5
    await flush(client)
    assert await db_views(engines, poc_id) == 5
    await flush(client)  # nothing left to write
    assert await db_views(engines, poc_id) == 5
    assert (await read_poc(client, admin, poc_id))["metrics"]["views"] == 6


async def test_concurrent_reads_all_count(make_client: MakeClient, engines: Engines) -> None:
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH)
    admin = await signup(client)
    poc_id = (await create_poc(client, admin))["pocId"]
    results = await asyncio.gather(*(read_poc(client, admin, poc_id) for _ in range(20)))
    assert sorted(r["metrics"]["views"] for r in results) == list(range(1, 21))
    await flush(client)
    assert await db_views(engines, poc_id) == 20


async def test_views_of_several_tenants_flush_to_each(
    make_client: MakeClient, engines: Engines
) -> None:
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH)
    alpha, beta = await signup(client), await signup(client)
    a_id = (await create_poc(client, alpha))["pocId"]
    b_id = (await create_poc(client, beta))["pocId"]
    for _ in range(2):
        await read_poc(client, alpha, a_id)
    for _ in range(3):
        await read_poc(client, beta, b_id)
    await flush(client)
    assert (await db_views(engines, a_id), await db_views(engines, b_id)) == (2, 3)


async def test_views_flush_at_shutdown(make_client: MakeClient, engines: Engines) -> None:
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH)
    admin = await signup(client)
    poc_id = (await create_poc(client, admin))["pocId"]
    for _ in range(3):
        await read_poc(client, admin, poc_id)
    assert await db_views(engines, poc_id) == 0
    await client.close()
    assert await db_views(engines, poc_id) == 3


async def test_reads_work_without_redis_and_count_in_the_database(
    make_client: MakeClient, engines: Engines
) -> None:
    client = await make_client(
        redis_url=SecretStr("redis://127.0.0.1:1/0"), view_flush_interval=NO_BACKGROUND_FLUSH
    )
    admin = await signup(client)
    poc_id = (await create_poc(client, admin, title="No cache"))["pocId"]
    for expected in (1, 2, 3):
        poc = await read_poc(client, admin, poc_id)
        assert (poc["title"], poc["metrics"]["views"]) == ("No cache", expected)
        assert await db_views(engines, poc_id) == expected
    resp = await update_poc(client, admin, poc_id, {"title": "Changed"})
    assert resp.status == 200, await resp.text()
    assert (await read_poc(client, admin, poc_id))["title"] == "Changed"
    await delete_poc(client, admin, poc_id)
    resp = await client.get(f"/v1/pocs/{poc_id}", headers=admin.auth)
    await expect_error(resp, 404, "not_found")
    assert await db_views(engines, poc_id) == 4


async def test_update_invalidates_the_cached_poc(make_client: MakeClient) -> None:
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH, poc_cache_ttl=3600)
    admin = await signup(client)
    poc_id = (await create_poc(client, admin, title="Old title", tags=["old"]))["pocId"]
    assert (await read_poc(client, admin, poc_id))["title"] == "Old title"  # cached now
    resp = await update_poc(client, admin, poc_id, {"title": "New title", "tags": ["new"]})
    assert resp.status == 200, await resp.text()
    poc = await read_poc(client, admin, poc_id)
    assert (poc["title"], poc["tags"], poc["metrics"]["views"]) == ("New title", ["new"], 2)
    assert poc["updatedAt"] == (await resp.json())["updatedAt"]


async def test_delete_invalidates_the_cached_poc(make_client: MakeClient) -> None:
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH, poc_cache_ttl=3600)
    admin = await signup(client)
    poc_id = (await create_poc(client, admin))["pocId"]
    await read_poc(client, admin, poc_id)
    await delete_poc(client, admin, poc_id)
    resp = await client.get(f"/v1/pocs/{poc_id}", headers=admin.auth)
    await expect_error(resp, 404, "not_found")


async def test_cache_is_per_tenant(make_client: MakeClient, engines: Engines) -> None:
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH, poc_cache_ttl=3600)
    owner, stranger = await signup(client), await signup(client)
    poc_id = (await create_poc(client, owner))["pocId"]
    await read_poc(client, owner, poc_id)  # cached for its tenant
    resp = await client.get(f"/v1/pocs/{poc_id}", headers=stranger.auth)
    await expect_error(resp, 404, "not_found")
    await flush(client)
    assert await db_views(engines, poc_id) == 1


async def test_a_row_read_before_a_change_is_not_cached_after_it(
    make_client: MakeClient,
) -> None:
    """A reader that missed the cache, read the old row, and only then tries to fill the cache
    (after the change's invalidation) must not put the old row back."""
    client = await make_client(view_flush_interval=NO_BACKGROUND_FLUSH)
    admin = await signup(client)
    poc_id = (await create_poc(client, admin, title="before"))["pocId"]
    app = client.app
    assert app is not None
    cache = app[appkeys.poc_cache_key]
    tenant, key = uuid.UUID(admin.tenant_id), uuid.UUID(poc_id)

    cached, generation = await cache.get(tenant, key)
    assert cached is None
    async with tenant_tx(app[appkeys.db_pool_key], tenant) as conn:
        old_row = await pocs_db.get(conn, tenant, key)
    assert old_row is not None
    await update_poc(client, admin, poc_id, {"title": "after"})  # commits, then invalidates
    await cache.put(old_row, generation)

    assert (await cache.get(tenant, key))[0] is None
    assert (await read_poc(client, admin, poc_id))["title"] == "after"
    refreshed, _ = await cache.get(tenant, key)
    assert refreshed is not None
    assert refreshed.title == "after"


async def test_counting_views_and_favorites_writes_no_index(
    client: Client, engines: Engines
) -> None:
    """Counter updates are heap-only: they change no indexed column (migration 0010), so no
    index, GIN ones included, gets an entry per counted view."""
    admin = await signup(client)
    poc = await create_poc(client, admin)
    poc_id, tenant_id = uuid.UUID(poc["pocId"]), uuid.UUID(admin.tenant_id)
    conn = await asyncpg.connect(engines.database_url)
    try:
        async with conn.transaction():
            partition = await conn.fetchval(
                "SELECT tableoid::regclass::text FROM pocs WHERE id = $1", poc_id
            )
            for _ in range(3):
                await pocs_db.add_views(conn, tenant_id, {poc_id: 2})
            await conn.execute(
                "UPDATE pocs SET favorite_count = favorite_count + 1 WHERE tenant_id = $1 "
                "AND id = $2",
                tenant_id,
                poc_id,
            )
            updates = await conn.fetchrow(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = $1",
                partition,
            )
    finally:
        await conn.close()

    assert (updates["n_tup_upd"], updates["n_tup_hot_upd"]) == (4, 4)
    assert (await db_poc(engines.database_url, poc["pocId"]))["view_count"] == 6
