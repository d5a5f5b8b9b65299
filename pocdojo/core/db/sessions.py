"""SQL for login sessions (refresh-token families) and their rotating refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class TokenLookup:
    """A refresh token found by its hash, with the state of its session and user."""

    session_id: UUID
    user_id: UUID
    used_at: datetime | None
    session_revoked: bool
    session_expired: bool
    user_active: bool
    role: str


@dataclass(frozen=True)
class Principal:
    """The current state behind an access token: role and activity come from the database,
    so a demotion, deactivation or logout takes effect on the next request."""

    user_id: UUID
    tenant_id: UUID
    role: str
    username: str
    session_id: UUID


async def create(
    conn: Any,
    *,
    session_id: UUID,
    tenant_id: UUID,
    user_id: UUID,
    ttl_seconds: int,
    ip_address: str | None,
    user_agent: str | None,
) -> None:
    """Open a login session."""
    await conn.execute(
        """INSERT INTO auth_sessions (id, tenant_id, user_id, expires_at, ip_address, user_agent)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5, $6)""",
        session_id,
        tenant_id,
        user_id,
        ttl_seconds,
        (ip_address or "")[:45] or None,
        (user_agent or "")[:500] or None,
    )


async def add_token(conn: Any, *, digest: bytes, tenant_id: UUID, session_id: UUID) -> None:
    """Store the hash of a session's next refresh token."""
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, tenant_id, session_id) VALUES ($1, $2, $3)",
        digest,
        tenant_id,
        session_id,
    )


async def lookup_token(conn: Any, digest: bytes) -> TokenLookup | None:
    """Find a refresh token and lock it, so two uses of one token are serialized."""
    row = await conn.fetchrow(
        """SELECT s.id AS session_id, s.user_id, t.used_at,
                  s.revoked_at IS NOT NULL AS session_revoked,
                  s.expires_at <= now() AS session_expired,
                  u.is_active AS user_active, u.role
           FROM refresh_tokens t
           JOIN auth_sessions s ON s.id = t.session_id
           JOIN users u ON u.id = s.user_id
           WHERE t.token_hash = $1
           FOR UPDATE OF t, s""",
        digest,
    )
    return TokenLookup(**dict(row)) if row else None


async def mark_used(conn: Any, digest: bytes, session_id: UUID) -> None:
    """Retire a refresh token after it has been exchanged."""
    await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", digest)
    await conn.execute("UPDATE auth_sessions SET last_used_at = now() WHERE id = $1", session_id)


async def revoke(conn: Any, session_id: UUID, reason: str) -> bool:
    """End a session; True if it was open."""
    status: str = await conn.execute(
        """UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2
           WHERE id = $1 AND revoked_at IS NULL""",
        session_id,
        reason,
    )
    return status.endswith(" 1")


async def revoke_all_for_user(
    conn: Any, user_id: UUID, reason: str, *, keep: UUID | None = None
) -> None:
    """End every open session of one user, except ``keep``."""
    await conn.execute(
        """UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3""",
        user_id,
        reason,
        keep,
    )


async def start_request(
    conn: Any, tenant_id: UUID, session_id: UUID, user_id: UUID
) -> Principal | None:
    """Scope the open transaction to ``tenant_id`` and read the user behind a live session, in
    one round trip; None if the session or the user is gone (or is not that tenant's)."""
    row = await conn.fetchrow(
        "SELECT * FROM app_request_principal($1, $2, $3)", tenant_id, session_id, user_id
    )
    return Principal(**dict(row)) if row else None


async def owner_of(conn: Any, session_id: UUID) -> UUID | None:
    """The user a session belongs to."""
    result: UUID | None = await conn.fetchval(
        "SELECT user_id FROM auth_sessions WHERE id = $1", session_id
    )
    return result
