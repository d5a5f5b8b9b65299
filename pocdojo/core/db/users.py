"""SQL for users. Callers own the transaction and set the tenant (see ``tenant_tx``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pocdojo.core.db import update_returning


@dataclass(frozen=True)
class User:
    id: UUID
    tenant_id: UUID
    username: str
    email: str
    full_name: str | None
    role: str
    is_active: bool
    last_login: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Credentials:
    user: User
    password_hash: str


_COLUMNS = (
    "id, tenant_id, username, email, full_name, role, is_active, last_login, created_at, updated_at"
)


def _user(row: Any) -> User:
    return User(**{k: row[k] for k in User.__dataclass_fields__})


async def insert(
    conn: Any,
    *,
    user_id: UUID,
    tenant_id: UUID,
    username: str,
    email: str,
    full_name: str | None,
    password_hash: str,
    role: str,
) -> User:
    """Insert a user; raises asyncpg's UniqueViolationError on a taken username or email."""
    row = await conn.fetchrow(
        f"""INSERT INTO users (id, tenant_id, username, email, full_name, password_hash, role)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING {_COLUMNS}""",
        user_id,
        tenant_id,
        username,
        email,
        full_name,
        password_hash,
        role,
    )
    return _user(row)


async def get(conn: Any, user_id: UUID, *, for_update: bool = False) -> User | None:
    """The user, if visible in this transaction's tenant."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1{lock}", user_id)
    return _user(row) if row else None


async def login_target(conn: Any, tenant_ref: str, username: str) -> tuple[UUID | None, str]:
    """The active tenant ``tenant_ref`` names (its id or domain), and ``username`` folded the
    way ``credentials_by_username`` folds it, in one round trip.

    The folding is the database's ``lower()``, whose rules come from its collation and are not
    Python's (PostgreSQL turns 'İ' into 'i', Python into 'i' and a combining dot): only the
    database can say which spellings of a name find the same user.
    """
    row = await conn.fetchrow(
        "SELECT app_resolve_tenant($1) AS tenant_id, lower($2::text) AS name", tenant_ref, username
    )
    return row["tenant_id"], row["name"]


async def credentials_by_username(conn: Any, username: str) -> Credentials | None:
    """The user and password hash for a login name (case-insensitive, see ``login_target``)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)",
        username,
    )
    return Credentials(_user(row), row["password_hash"]) if row else None


async def password_hash(conn: Any, user_id: UUID) -> str | None:
    """The stored hash of one user's password."""
    result: str | None = await conn.fetchval(
        "SELECT password_hash FROM users WHERE id = $1", user_id
    )
    return result


async def count(conn: Any) -> int:
    """How many users the current tenant has."""
    result: int = await conn.fetchval("SELECT count(*) FROM users")
    return result


async def page(conn: Any, *, limit: int, offset: int) -> list[User]:
    """One page of the current tenant's users, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    return [_user(r) for r in rows]


async def update(conn: Any, user_id: UUID, changes: dict[str, Any]) -> User:
    """Apply column changes (names are trusted: they come from our own field map)."""
    row = await update_returning(conn, "users", user_id, changes, _COLUMNS)
    return _user(row)


async def touch_last_login(conn: Any, user_id: UUID) -> None:
    """Record a successful login."""
    await conn.execute("UPDATE users SET last_login = now() WHERE id = $1", user_id)


async def usernames(conn: Any, user_ids: list[UUID]) -> dict[UUID, str]:
    """The usernames of those of ``user_ids`` that exist (in the caller's tenant)."""
    rows = await conn.fetch("SELECT id, username FROM users WHERE id = ANY($1::uuid[])", user_ids)
    return {r["id"]: r["username"] for r in rows}
