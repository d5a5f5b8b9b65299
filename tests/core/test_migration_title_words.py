"""Migration 0008 collects the words of the titles already stored, per tenant, and a trigger
collects those of every title written afterwards."""

from __future__ import annotations

import uuid

import asyncpg

from tests.core.migration_helpers import apply_migrations, insert_tenant


async def _poc(
    conn: asyncpg.Connection, tenant: uuid.UUID, user: uuid.UUID, title: str, status: str
) -> uuid.UUID:
    poc = uuid.uuid4()
    await conn.execute(
        "INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags, status) "
        "VALUES ($1, $2, $3, $4, 'd', 'Go', '{x}', $5)",
        poc,
        tenant,
        user,
        title,
        status,
    )
    return poc


async def _words(conn: asyncpg.Connection, tenant: uuid.UUID) -> set[str]:
    rows = await conn.fetch("SELECT word FROM poc_title_words WHERE tenant_id = $1", tenant)
    return {r["word"] for r in rows}


async def test_existing_titles_give_their_words_to_their_own_tenant(
    scratch: asyncpg.Connection,
) -> None:
    await apply_migrations(scratch, below=8)
    (a, a_user), (b, b_user) = await insert_tenant(scratch), await insert_tenant(scratch)
    await _poc(scratch, a, a_user, "Blue-green deploys on Node.js", "active")
    await _poc(scratch, a, a_user, "Ünïcode Straße", "archived")
    await _poc(scratch, a, a_user, "Forgotten prototype", "deleted")
    await _poc(scratch, b, b_user, "Kafka streams", "active")

    await apply_migrations(scratch, only=8)

    assert await _words(scratch, a) == {
        "blue-green", "blue", "green", "deploys", "on", "node.js", "ünïcode", "straße"
    }  # fmt: skip
    assert await _words(scratch, b) == {"kafka", "streams"}


async def test_new_and_renamed_titles_add_their_words_and_keep_the_old_ones(
    scratch: asyncpg.Connection,
) -> None:
    await apply_migrations(scratch)
    tenant, user = await insert_tenant(scratch)
    poc = await _poc(scratch, tenant, user, "Kafka streams", "active")
    assert await _words(scratch, tenant) == {"kafka", "streams"}

    await scratch.execute("UPDATE pocs SET title = 'Kafka connectors' WHERE id = $1", poc)
    # The parser keeps a URL's quote in its words ("ex.com/o'neil", "/o'neil"); a quote would
    # need escaping in the tsquery the search builds from them, so those are left out.
    await _poc(scratch, tenant, user, "Notes at http://ex.com/o'neil", "active")

    assert await _words(scratch, tenant) == {
        "kafka", "streams", "connectors", "notes", "at", "ex.com"
    }  # fmt: skip
