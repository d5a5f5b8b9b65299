"""Migration 0011: the worker prunes each tenant's title words of the words no live title
holds, and never those of a title that is being written while it prunes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from pocdojo.core.db import open_pool, tenant_tx
from pocdojo.core.search import PocQuery
from pocdojo.core.search.postgres import PostgresSearch
from pocdojo.jobs.worker import prune_title_words
from tests.conftest import Engines
from tests.core.migration_helpers import (
    apply_migrations,
    insert_poc,
    insert_tenant,
    title_words,
    with_database,
)
from tests.helpers import wait_until


@pytest.fixture
async def app_pool(scratch: asyncpg.Connection, engines: Engines) -> AsyncIterator[asyncpg.Pool]:
    """The migrated scratch database, and a pool on it as the application (pocdojo_app)."""
    await apply_migrations(scratch)
    name = await scratch.fetchval("SELECT current_database()")
    pool = await open_pool(with_database(engines.database_url, name), None)
    try:
        yield pool
    finally:
        await pool.close()


async def test_words_no_live_title_holds_are_pruned_tenant_by_tenant(
    scratch: asyncpg.Connection, app_pool: asyncpg.Pool
) -> None:
    (a, a_user), (b, b_user) = await insert_tenant(scratch), await insert_tenant(scratch)
    await insert_poc(scratch, a, a_user, "Kafka streams")
    renamed = await insert_poc(scratch, a, a_user, "Kafka pipelines")
    await scratch.execute("UPDATE pocs SET title = 'Kafka connectors' WHERE id = $1", renamed)
    gone = await insert_poc(scratch, a, a_user, "Forgotten prototype")
    await scratch.execute("UPDATE pocs SET status = 'deleted' WHERE id = $1", gone)
    only = await insert_poc(scratch, b, b_user, "Orphan wörds")
    await scratch.execute("UPDATE pocs SET status = 'deleted' WHERE id = $1", only)
    archived = await insert_poc(scratch, b, b_user, "Archived but live")
    await scratch.execute("UPDATE pocs SET status = 'archived' WHERE id = $1", archived)
    assert "pipelines" in await title_words(scratch, a)

    assert await prune_title_words(app_pool) == (5, max(a, b))

    assert await title_words(scratch, a) == {"kafka", "streams", "connectors"}
    assert await title_words(scratch, b) == {"archived", "but", "live"}
    assert await prune_title_words(app_pool) == (0, max(a, b))
    assert await prune_title_words(app_pool, after=max(a, b)) == (0, None)


async def test_a_pass_goes_through_the_tenants_a_batch_at_a_time(
    scratch: asyncpg.Connection, app_pool: asyncpg.Pool
) -> None:
    tenants = sorted([await insert_tenant(scratch) for _ in range(3)])
    for tenant, user in tenants:
        gone = await insert_poc(scratch, tenant, user, "Gone away")
        await scratch.execute("UPDATE pocs SET status = 'deleted' WHERE id = $1", gone)

    passes = [await prune_title_words(app_pool, batch=2)]
    passes.append(await prune_title_words(app_pool, after=passes[-1][1], batch=2))
    passes.append(await prune_title_words(app_pool, after=passes[-1][1], batch=2))

    assert passes == [(4, tenants[1][0]), (2, tenants[2][0]), (0, None)]
    for tenant, _ in tenants:
        assert await title_words(scratch, tenant) == set()


async def test_a_misspelled_name_still_finds_its_live_title_after_a_prune(
    scratch: asyncpg.Connection, app_pool: asyncpg.Pool
) -> None:
    tenant, user = await insert_tenant(scratch)
    await insert_poc(scratch, tenant, user, "Kafka streams")
    gone = await insert_poc(scratch, tenant, user, "Kafka stream")
    await scratch.execute("UPDATE pocs SET status = 'deleted' WHERE id = $1", gone)

    assert await prune_title_words(app_pool) == (1, tenant)  # "stream"

    async with tenant_tx(app_pool, tenant) as conn:
        page = await PostgresSearch().search(conn, tenant, PocQuery(name="kafla streem"))
    assert [hit.title for hit in page.hits] == ["Kafka streams"]


async def test_a_prune_waits_for_a_title_being_written(
    scratch: asyncpg.Connection, app_pool: asyncpg.Pool, engines: Engines
) -> None:
    """A word only a deleted POC held is about to be pruned when a new POC takes it. The
    trigger adds nothing (the word is there), so a prune that read the titles before the new
    POC committed would leave that POC without its word; the prune waits for it instead."""
    tenant, user = await insert_tenant(scratch)
    gone = await insert_poc(scratch, tenant, user, "Zebra crossing")
    await scratch.execute("UPDATE pocs SET status = 'deleted' WHERE id = $1", gone)
    name = await scratch.fetchval("SELECT current_database()")
    writer = await asyncpg.connect(with_database(engines.database_url, name))
    try:
        async with writer.transaction():
            await insert_poc(writer, tenant, user, "Zebra")
            prune = asyncio.create_task(prune_title_words(app_pool))

            async def queued_or_done() -> bool:
                waiting = await scratch.fetchval(
                    "SELECT count(*) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND NOT granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                return prune.done() or waiting > 0

            await wait_until(queued_or_done)
            assert not prune.done(), "the prune did not wait for the writer"
        assert await asyncio.wait_for(prune, 10) == (1, tenant)  # "crossing"
    finally:
        await writer.close()

    assert await title_words(scratch, tenant) == {"zebra"}
