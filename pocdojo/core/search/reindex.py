"""Rebuild search indexes from PostgreSQL, the source of truth, with a progress bar."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from tqdm import tqdm

from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.search import opensearch

POSTGRES_INDEXES = ("pocs_title_trgm_idx", "pocs_tags_idx", "pocs_search_idx")
_BATCH = 2000


async def reindex_postgres(owner_dsn: str) -> None:
    """Rebuild the search indexes in place without blocking writes."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        for name in tqdm(POSTGRES_INDEXES, desc="reindex", unit="index"):
            await conn.execute(f"REINDEX INDEX CONCURRENTLY {name}")
    finally:
        await conn.close()


async def reindex_opensearch(owner_dsn: str, client: Any) -> int:
    """Build a new OpenSearch index from every live POC, then swap the alias to it.

    Changes made while the copy ran are applied again after the swap, so none is missed.
    Returns the number of POCs indexed.
    """
    new_index = f"{opensearch.INDEX_ALIAS}-{int(time.time())}"
    await client.indices.create(index=new_index, body=opensearch.INDEX_BODY)
    target = opensearch.OpenSearchSearch(client, index=new_index)
    conn = await asyncpg.connect(owner_dsn)
    copied = 0
    try:
        started = await conn.fetchval("SELECT now()")
        total = await conn.fetchval("SELECT count(*) FROM pocs WHERE status <> 'deleted'")
        with tqdm(total=total, desc="reindex", unit="poc") as bar:
            async with conn.transaction():
                cursor = conn.cursor(
                    f"SELECT {pocs_db.COLUMNS} FROM pocs WHERE status <> 'deleted'"
                )
                batch: list[pocs_db.Poc] = []
                async for row in cursor:
                    batch.append(pocs_db.to_poc(row))
                    if len(batch) == _BATCH:
                        await target.apply(batch)
                        copied += len(batch)
                        bar.update(len(batch))
                        batch = []
                if batch:
                    await target.apply(batch)
                    copied += len(batch)
                    bar.update(len(batch))
        await target.refresh()
        old = await opensearch.swap_alias(client, new_index)
        since = await conn.fetch(
            f"SELECT {pocs_db.COLUMNS} FROM pocs WHERE updated_at >= $1",
            started,
        )
        await opensearch.OpenSearchSearch(client).apply([pocs_db.to_poc(r) for r in since])
        for index in old:
            await client.indices.delete(index=index)
    finally:
        await conn.close()
    return copied
