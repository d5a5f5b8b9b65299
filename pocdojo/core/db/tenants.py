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
    """Counts of what the tenant holds."""
    user_count = await conn.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1", tenant_id)
    return TenantUsage(user_count=user_count, poc_count=0, storage_used=0)
