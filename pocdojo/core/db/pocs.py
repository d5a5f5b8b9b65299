"""SQL for POCs and favorites. Callers own the transaction and set the tenant.

Every statement on ``pocs`` also names the tenant as a parameter, besides the row-level
policy: the table is partitioned by tenant, and only a parameter lets the planner prune to one
partition before planning (the policy's setting is read at run time, too late for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pocdojo.core.db import update_returning


@dataclass(frozen=True)
class Poc:
    id: UUID
    tenant_id: UUID
    user_id: UUID
    title: str
    description: str
    language: str
    tags: list[str]
    repository_url: str | None
    documentation: str | None
    status: str
    view_count: int
    favorite_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Favorite:
    id: UUID
    poc_id: UUID
    user_id: UUID
    created_at: datetime


@dataclass(frozen=True)
class FavoriteEntry:
    """A favorite joined with the POC it names."""

    id: UUID
    poc_id: UUID
    poc_title: str
    language: str
    tags: list[str]
    added_at: datetime


COLUMNS = (
    "id, tenant_id, user_id, title, description, language, tags, repository_url, "
    "documentation, status, view_count, favorite_count, created_at, updated_at"
)
_LIVE = "status <> 'deleted'"


def to_poc(row: Any) -> Poc:
    """A POC from a row holding ``COLUMNS``."""
    return Poc(**{k: row[k] for k in Poc.__dataclass_fields__})


async def insert(conn: Any, **fields: Any) -> Poc:
    """Insert a POC; ``fields`` are column names and values."""
    names = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    row = await conn.fetchrow(
        f"INSERT INTO pocs ({names}) VALUES ({params}) RETURNING {COLUMNS}", *fields.values()
    )
    return to_poc(row)


async def get(conn: Any, tenant_id: UUID, poc_id: UUID, *, for_update: bool = False) -> Poc | None:
    """A live (not deleted) POC of the tenant."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM pocs WHERE tenant_id = $1 AND id = $2 AND {_LIVE}{lock}",
        tenant_id,
        poc_id,
    )
    return to_poc(row) if row else None


async def get_many(conn: Any, tenant_id: UUID, poc_ids: list[UUID]) -> list[Poc]:
    """POCs by id, deleted ones included (the search indexer needs to see deletions)."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM pocs WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
        tenant_id,
        poc_ids,
    )
    return [to_poc(r) for r in rows]


async def add_views(conn: Any, tenant_id: UUID, counts: dict[UUID, int]) -> None:
    """Add buffered view counts."""
    await conn.executemany(
        "UPDATE pocs SET view_count = view_count + $3 WHERE tenant_id = $1 AND id = $2",
        [(tenant_id, poc_id, n) for poc_id, n in counts.items()],
    )


async def view_once(conn: Any, tenant_id: UUID, poc_id: UUID) -> Poc | None:
    """Count one view straight in the database and return the POC."""
    row = await conn.fetchrow(
        f"UPDATE pocs SET view_count = view_count + 1 WHERE tenant_id = $1 AND id = $2 "
        f"AND {_LIVE} RETURNING {COLUMNS}",
        tenant_id,
        poc_id,
    )
    return to_poc(row) if row else None


async def update(conn: Any, tenant_id: UUID, poc_id: UUID, changes: dict[str, Any]) -> Poc:
    """Apply column changes (names are trusted: they come from our own field map)."""
    row = await update_returning(conn, "pocs", poc_id, changes, COLUMNS, tenant_id=tenant_id)
    return to_poc(row)


async def soft_delete(conn: Any, tenant_id: UUID, poc_id: UUID) -> None:
    """Mark a POC deleted: it leaves every read, search and tag count."""
    await conn.execute(
        "UPDATE pocs SET status = 'deleted', deleted_at = now(), updated_at = now() "
        "WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        poc_id,
    )


async def count_live(conn: Any, tenant_id: UUID) -> int:
    """Live POCs of the tenant (the maxPocs quota counts these)."""
    result: int = await conn.fetchval(
        f"SELECT count(*) FROM pocs WHERE tenant_id = $1 AND {_LIVE}", tenant_id
    )
    return result


async def page_by_owner(
    conn: Any, tenant_id: UUID, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[Poc], int]:
    """One page of a user's live POCs, newest first, and how many there are."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS}, count(*) OVER () AS total FROM pocs
            WHERE tenant_id = $1 AND user_id = $2 AND {_LIVE}
            ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4""",
        tenant_id,
        user_id,
        limit,
        offset,
    )
    total = (
        rows[0]["total"]
        if rows
        else await conn.fetchval(
            f"SELECT count(*) FROM pocs WHERE tenant_id = $1 AND user_id = $2 AND {_LIVE}",
            tenant_id,
            user_id,
        )
    )
    return [to_poc(r) for r in rows], total


async def enqueue_for_index(conn: Any, tenant_id: UUID, poc_id: UUID) -> None:
    """Record in the outbox that the search index must learn of this POC's new state."""
    await conn.execute(
        "INSERT INTO search_outbox (tenant_id, poc_id) VALUES ($1, $2)", tenant_id, poc_id
    )


# --- favorites -------------------------------------------------------------------------------


async def add_favorite(
    conn: Any, *, favorite_id: UUID, tenant_id: UUID, user_id: UUID, poc_id: UUID
) -> Favorite | None:
    """Add a favorite and count it on the POC; None if the user already has it."""
    row = await conn.fetchrow(
        """INSERT INTO favorites (id, tenant_id, user_id, poc_id) VALUES ($1, $2, $3, $4)
           ON CONFLICT (tenant_id, user_id, poc_id) DO NOTHING
           RETURNING id, poc_id, user_id, created_at""",
        favorite_id,
        tenant_id,
        user_id,
        poc_id,
    )
    if row is None:
        return None
    await conn.execute(
        "UPDATE pocs SET favorite_count = favorite_count + 1 WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        poc_id,
    )
    return Favorite(**dict(row))


async def get_favorite(conn: Any, favorite_id: UUID) -> Favorite | None:
    """One favorite of the current tenant."""
    row = await conn.fetchrow(
        "SELECT id, poc_id, user_id, created_at FROM favorites WHERE id = $1", favorite_id
    )
    return Favorite(**dict(row)) if row else None


async def remove_favorite(conn: Any, tenant_id: UUID, favorite_id: UUID) -> Favorite | None:
    """Remove a favorite and uncount it; None if it was already gone."""
    row = await conn.fetchrow(
        "DELETE FROM favorites WHERE tenant_id = $1 AND id = $2 "
        "RETURNING id, poc_id, user_id, created_at",
        tenant_id,
        favorite_id,
    )
    if row is None:
        return None
    await conn.execute(
        "UPDATE pocs SET favorite_count = favorite_count - 1 WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        row["poc_id"],
    )
    return Favorite(**dict(row))


async def favorites_of(
    conn: Any, tenant_id: UUID, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[FavoriteEntry], int]:
    """A user's favorites of live POCs, newest first, and how many there are."""
    rows = await conn.fetch(
        f"""SELECT f.id, f.poc_id, p.title AS poc_title, p.language, p.tags,
                   f.created_at AS added_at, count(*) OVER () AS total
            FROM favorites f JOIN pocs p ON p.tenant_id = $1 AND p.id = f.poc_id
            WHERE f.tenant_id = $1 AND f.user_id = $2 AND p.{_LIVE}
            ORDER BY f.created_at DESC, f.id DESC LIMIT $3 OFFSET $4""",
        tenant_id,
        user_id,
        limit,
        offset,
    )
    total = (
        rows[0]["total"]
        if rows
        else await conn.fetchval(
            f"""SELECT count(*) FROM favorites f JOIN pocs p ON p.tenant_id = $1 AND p.id = f.poc_id
            WHERE f.tenant_id = $1 AND f.user_id = $2 AND p.{_LIVE}""",
            tenant_id,
            user_id,
        )
    )
    entries = [FavoriteEntry(**{k: r[k] for k in FavoriteEntry.__dataclass_fields__}) for r in rows]
    return entries, total


async def title_word_tenants(conn: Any, after: UUID | None, limit: int) -> list[UUID]:
    """Up to ``limit`` tenants that have title words, by id, after ``after`` (for the pruner;
    migration 0011)."""
    rows = await conn.fetch("SELECT * FROM app_title_word_tenants($1, $2)", after, limit)
    return [r[0] for r in rows]


async def prune_title_words(conn: Any) -> int:
    """Remove the transaction's tenant's title words that no live title holds any more;
    returns how many went. Writers of the tenant's titles wait until the transaction ends."""
    removed: int = await conn.fetchval("SELECT prune_title_words()")
    return removed
