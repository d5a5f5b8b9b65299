"""Migration 0006 turns a populated ``pocs`` table into one partitioned by tenant without
losing or changing a row, and keeps every reference to it enforced."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.core.migration_helpers import apply_migrations, insert_tenant

_POC_COLUMNS = (
    "id, tenant_id, user_id, title, description, language, tags, repository_url, documentation, "
    "status, view_count, favorite_count, created_at, updated_at, deleted_at, search"
)


async def _seed(conn: asyncpg.Connection) -> dict[str, Any]:
    """Two tenants with POCs (one deleted), a favorite and a dojo session."""
    made: dict[str, Any] = {"pocs": []}
    for t in range(2):
        tenant, user = await insert_tenant(conn, f"T{t}")
        for i in range(5):
            poc = uuid.uuid4()
            await conn.execute(
                "INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags, "
                "documentation, view_count, favorite_count) "
                "VALUES ($1, $2, $3, $4, 'ünïcode ✓ description', 'Go', $5, $6, $7, $8)",
                poc,
                tenant,
                user,
                f"Title {t}-{i}",
                ["shared", f"tag-{i}"],
                None if i % 2 else "# docs",
                i * 10,
                1 if i == 0 else 0,
            )
            made["pocs"].append((tenant, poc))
        await conn.execute(
            "UPDATE pocs SET status = 'deleted', deleted_at = now() WHERE id = $1", poc
        )
        first = made["pocs"][t * 5][1]
        await conn.execute(
            "INSERT INTO favorites (id, tenant_id, user_id, poc_id) VALUES ($1, $2, $3, $4)",
            uuid.uuid4(),
            tenant,
            user,
            first,
        )
        await conn.execute(
            "INSERT INTO dojo_sessions (id, tenant_id, poc_id, host_user_id, title, "
            "max_participants, join_code) VALUES ($1, $2, $3, $4, 'dojo', 5, 'ABCDEF')",
            uuid.uuid4(),
            tenant,
            first,
            user,
        )
        made.setdefault("tenants", []).append((tenant, user))
    return made


async def _snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    return {
        "pocs": [dict(r) for r in await conn.fetch(f"SELECT {_POC_COLUMNS} FROM pocs ORDER BY id")],  # noqa: S608
        "poc_tags": [
            dict(r) for r in await conn.fetch("SELECT * FROM poc_tags ORDER BY tenant_id, tag")
        ],
        "favorites": [dict(r) for r in await conn.fetch("SELECT * FROM favorites ORDER BY id")],
    }


async def test_populated_pocs_are_moved_into_tenant_partitions_unchanged(
    scratch: asyncpg.Connection,
) -> None:
    await apply_migrations(scratch, below=6)
    made = await _seed(scratch)
    before = await _snapshot(scratch)

    await apply_migrations(scratch, only=6)

    assert await _snapshot(scratch) == before
    assert len(before["pocs"]) == 10
    kind = await scratch.fetchval("SELECT relkind FROM pg_class WHERE oid = 'pocs'::regclass")
    assert kind == b"p"  # partitioned
    holders = await scratch.fetch(
        "SELECT DISTINCT tableoid::regclass::text AS part, tenant_id FROM pocs"
    )
    assert {r["tenant_id"] for r in holders} == {t for t, _ in made["tenants"]}
    assert all(r["part"].startswith("pocs_p") for r in holders)


async def test_references_and_tag_counts_still_hold_after_the_migration(
    scratch: asyncpg.Connection,
) -> None:
    await apply_migrations(scratch, below=6)
    made = await _seed(scratch)
    await apply_migrations(scratch, only=6)
    (tenant_a, user_a), (tenant_b, _) = made["tenants"]
    poc_of_b = next(poc for tenant, poc in made["pocs"] if tenant == tenant_b)

    # A favorite naming another tenant's POC, or one that does not exist, is refused.
    for poc in (poc_of_b, uuid.uuid4()):
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await scratch.execute(
                "INSERT INTO favorites (id, tenant_id, user_id, poc_id) VALUES ($1, $2, $3, $4)",
                uuid.uuid4(),
                tenant_a,
                user_a,
                poc,
            )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await scratch.execute(
            "INSERT INTO dojo_sessions (id, tenant_id, poc_id, host_user_id, title, "
            "max_participants, join_code) VALUES ($1, $2, $3, $4, 'dojo', 5, 'ABCDEF')",
            uuid.uuid4(),
            tenant_a,
            poc_of_b,
            user_a,
        )
    # The tag-counting trigger is back: a new POC counts, a deletion uncounts.
    shared = "SELECT poc_count FROM poc_tags WHERE tenant_id = $1 AND tag = 'shared'"
    assert await scratch.fetchval(shared, tenant_a) == 4
    new = uuid.uuid4()
    await scratch.execute(
        "INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags) "
        "VALUES ($1, $2, $3, 'new', 'd', 'Go', '{shared}')",
        new,
        tenant_a,
        user_a,
    )
    assert await scratch.fetchval(shared, tenant_a) == 5
    await scratch.execute("UPDATE pocs SET status = 'deleted' WHERE tenant_id = $1", tenant_a)
    assert await scratch.fetchval(shared, tenant_a) == 0
    # The same id cannot be stored twice for a tenant.
    with pytest.raises(asyncpg.UniqueViolationError):
        await scratch.execute(
            "INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags) "
            "VALUES ($1, $2, $3, 'again', 'd', 'Go', '{x}')",
            new,
            tenant_a,
            user_a,
        )
