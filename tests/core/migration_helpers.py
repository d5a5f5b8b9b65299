"""Running migrations one by one, over data they did not create."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from pocdojo.core.db.migrate import load_migrations


def with_database(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def apply_migrations(
    conn: asyncpg.Connection, *, below: int | None = None, only: int | None = None
) -> None:
    """Apply the migrations numbered below ``below``, or the one numbered ``only``; all of
    them without either."""
    for m in load_migrations():
        everything = below is None and only is None
        if everything or (below is not None and m.version < below) or m.version == only:
            async with conn.transaction():
                await conn.execute(m.sql)


async def insert_tenant(conn: asyncpg.Connection, name: str = "T") -> tuple[uuid.UUID, uuid.UUID]:
    """A tenant and its admin, inserted as the owner; returns their ids."""
    tenant, user = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO tenants (id, name, domain, contact_email, plan, max_users, max_pocs) "
        "VALUES ($1, $2, $3, 'ops@example.com', 'standard', 5, 100)",
        tenant,
        name,
        f"{name.lower()}-{tenant.hex[:8]}.example",
    )
    await conn.execute(
        "INSERT INTO users (id, tenant_id, username, email, password_hash, role) "
        "VALUES ($1, $2, 'u', 'u@example.com', 'x', 'admin')",
        user,
        tenant,
    )
    return tenant, user


async def insert_poc(
    conn: asyncpg.Connection,
    tenant: uuid.UUID,
    user: uuid.UUID,
    title: str,
    status: str = "active",
) -> uuid.UUID:
    """A POC of ``tenant`` titled ``title``, inserted as the owner; returns its id."""
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


async def title_words(conn: asyncpg.Connection, tenant: uuid.UUID) -> set[str]:
    """The tenant's title words (migration 0008), read as the owner."""
    rows = await conn.fetch("SELECT word FROM poc_title_words WHERE tenant_id = $1", tenant)
    return {r["word"] for r in rows}
