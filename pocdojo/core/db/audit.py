"""The audit log: one row per mutation, written in the mutation's own transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class Actor:
    """Who did it and from where; built once per request."""

    tenant_id: UUID
    user_id: UUID | None
    request_id: str
    ip_address: str | None
    user_agent: str | None


async def record(
    conn: Any,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: UUID | None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Append one audit row."""
    await conn.execute(
        """INSERT INTO audit_log (id, tenant_id, user_id, action, entity_type, entity_id,
                                  ip_address, user_agent, request_id, metadata)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        uuid.uuid4(),
        actor.tenant_id,
        actor.user_id,
        action,
        entity_type,
        entity_id,
        (actor.ip_address or "")[:45] or None,
        (actor.user_agent or "")[:500] or None,
        actor.request_id[:64],
        metadata,
    )
