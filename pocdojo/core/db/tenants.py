"""SQL for tenants. Callers own the transaction and set the tenant (see ``tenant_tx``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class Tenant:
    id: UUID
    name: str
    domain: str
    contact_email: str
    plan: str
    status: str
    max_users: int
    max_pocs: int
    features: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class TenantUsage:
    user_count: int
    poc_count: int
    storage_used: int


_COLUMNS = (
    "id, name, domain, contact_email, plan, status, max_users, max_pocs, features, "
    "created_at, updated_at"
)


def _tenant(row: Any) -> Tenant:
    return Tenant(**dict(row))


async def insert(
    conn: Any,
    *,
    tenant_id: UUID,
    name: str,
    domain: str,
    contact_email: str,
    plan: str,
    max_users: int,
    max_pocs: int,
    features: list[str],
) -> Tenant:
    """Insert a tenant; raises asyncpg's UniqueViolationError on a taken domain."""
    row = await conn.fetchrow(
        f"""INSERT INTO tenants (id, name, domain, contact_email, plan, max_users, max_pocs,
                                 features)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            RETURNING {_COLUMNS}""",
        tenant_id,
        name,
        domain,
        contact_email,
        plan,
        max_users,
        max_pocs,
        features,
    )
    return _tenant(row)


async def get(conn: Any, tenant_id: UUID, *, for_update: bool = False) -> Tenant | None:
    """The tenant, if it is visible in this transaction."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tenants WHERE id = $1{lock}", tenant_id)
    return _tenant(row) if row else None


async def usage(conn: Any, tenant_id: UUID) -> TenantUsage:
    """What the tenant holds: its users, its live POCs (as the maxPocs quota counts them),
    and the bytes of the files its jobs stored (reports, videos with their thumbnails, as
    recorded when each was stored; migration 0012)."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM users WHERE tenant_id = $1) AS user_count,
                  (SELECT count(*) FROM pocs WHERE tenant_id = $1 AND status <> 'deleted')
                      AS poc_count,
                  ((SELECT coalesce(sum(size_bytes), 0) FROM reports WHERE tenant_id = $1)
                   + (SELECT coalesce(sum(size_bytes), 0) FROM videos WHERE tenant_id = $1)
                  )::bigint AS storage_used""",
        tenant_id,
    )
    return TenantUsage(**dict(row))
