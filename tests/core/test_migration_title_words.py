"""Migration 0008 collects the words of the titles already stored, per tenant, and a trigger
collects those of every title written afterwards."""

from __future__ import annotations

import asyncpg

from tests.core.migration_helpers import apply_migrations, insert_poc, insert_tenant, title_words


async def test_existing_titles_give_their_words_to_their_own_tenant(
    scratch: asyncpg.Connection,
) -> None:
    await apply_migrations(scratch, below=8)
    (a, a_user), (b, b_user) = await insert_tenant(scratch), await insert_tenant(scratch)
    await insert_poc(scratch, a, a_user, "Blue-green deploys on Node.js", "active")
    await insert_poc(scratch, a, a_user, "Ünïcode Straße", "archived")
    await insert_poc(scratch, a, a_user, "Forgotten prototype", "deleted")
    await insert_poc(scratch, b, b_user, "Kafka streams", "active")

    await apply_migrations(scratch, only=8)

    assert await title_words(scratch, a) == {
        "blue-green", "blue", "green", "deploys", "on", "node.js", "ünïcode", "straße"
    }  # fmt: skip
    assert await title_words(scratch, b) == {"kafka", "streams"}


async def test_new_and_renamed_titles_add_their_words_and_keep_the_old_ones(
    scratch: asyncpg.Connection,
) -> None:
    await apply_migrations(scratch)
    tenant, user = await insert_tenant(scratch)
    poc = await insert_poc(scratch, tenant, user, "Kafka streams", "active")
    assert await title_words(scratch, tenant) == {"kafka", "streams"}

    await scratch.execute("UPDATE pocs SET title = 'Kafka connectors' WHERE id = $1", poc)
    # The parser keeps a URL's quote in its words ("ex.com/o'neil", "/o'neil"); a quote would
    # need escaping in the tsquery the search builds from them, so those are left out.
    await insert_poc(scratch, tenant, user, "Notes at http://ex.com/o'neil", "active")

    assert await title_words(scratch, tenant) == {
        "kafka", "streams", "connectors", "notes", "at", "ex.com"
    }  # fmt: skip
