"""The search outbox: POC changes recorded in their own transaction, drained into an index.

A row is deleted only after the index has accepted the POC's state, so an index outage delays
search results and loses nothing. Rows are claimed with ``FOR UPDATE SKIP LOCKED``: several
nodes can drain at once without indexing the same change twice at the same moment.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol
from uuid import UUID

import structlog

from pocdojo.core.db import pocs as pocs_db

log = structlog.get_logger(__name__)

MAX_BACKOFF_SECONDS = 300


class Indexer(Protocol):
    """Something that can take POCs' current state (the OpenSearch adapter)."""

    async def apply(self, pocs: list[pocs_db.Poc]) -> None: ...


async def drain_once(pool: Any, indexer: Indexer, *, batch: int = 500) -> int:
    """Send one batch of due changes to ``indexer``; returns how many rows were settled.

    On failure the rows stay, with their attempt counted and the next try pushed back
    exponentially (up to five minutes).
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """SELECT id, tenant_id, poc_id FROM search_outbox
               WHERE next_try <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
            batch,
        )
        if not rows:
            return 0
        by_tenant: dict[UUID, set[UUID]] = defaultdict(set)
        for row in rows:
            by_tenant[row["tenant_id"]].add(row["poc_id"])
        ids = [row["id"] for row in rows]
        try:
            pocs: list[pocs_db.Poc] = []
            for tenant_id, poc_ids in by_tenant.items():
                # Each tenant's POCs are read under that tenant's row-level security.
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
                pocs.extend(await pocs_db.get_many(conn, tenant_id, list(poc_ids)))
            await indexer.apply(pocs)
        except Exception as exc:  # the index's failure modes are many; each is retried
            log.warning("search index update failed; will retry", error=str(exc), rows=len(ids))
            await conn.execute(
                """UPDATE search_outbox
                   SET attempts = attempts + 1, last_error = left($2, 1000),
                       next_try = now() + make_interval(secs => least($3, power(2, attempts)))
                   WHERE id = ANY($1::bigint[])""",
                ids,
                f"{type(exc).__name__}: {exc}",
                MAX_BACKOFF_SECONDS,
            )
            return 0
        await conn.execute("DELETE FROM search_outbox WHERE id = ANY($1::bigint[])", ids)
        return len(ids)


async def pending(pool: Any) -> int:
    """How many changes wait for the index."""
    async with pool.acquire() as conn:
        result: int = await conn.fetchval("SELECT count(*) FROM search_outbox")
        return result
