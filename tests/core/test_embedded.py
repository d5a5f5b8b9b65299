"""The embedded PostgreSQL is sized from the machine's memory, not left on its defaults."""

from __future__ import annotations

import os
import re

import asyncpg
import pytest

from pocdojo.core.embedded import postgres_tuning
from pocdojo.core.search import PocQuery
from pocdojo.core.search.postgres import build_search
from tests.conftest import Engines
from tests.core.migration_helpers import apply_migrations, insert_tenant

GIB = 1024**3


@pytest.mark.parametrize(
    ("memory", "buffers_mib", "cache_mib"),
    [
        (GIB // 4, 128, 128),  # tiny machine: never below PostgreSQL's own default
        (4 * GIB, 1024, 2048),  # a quarter for buffers, half as the planner's file cache
        (24 * GIB, 2048, 12 * 1024),  # buffers capped at 2 GB
    ],
)
def test_tuning_follows_memory(memory: int, buffers_mib: int, cache_mib: int) -> None:
    tuning = postgres_tuning(memory)

    assert tuning["shared_buffers"] * 8 // 1024 == buffers_mib
    assert tuning["effective_cache_size"] * 8 // 1024 == cache_mib
    assert tuning["seq_page_cost"] == 0.1
    assert tuning["random_page_cost"] == 0.11


async def test_the_embedded_server_runs_with_the_tuning(engines: Engines) -> None:
    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set: the suite runs on an external server")
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    conn = await asyncpg.connect(engines.database_url)
    try:
        rows = await conn.fetch(
            "SELECT name, setting::float8 AS value FROM pg_settings WHERE name = ANY($1)",
            list(postgres_tuning(memory)),
        )
    finally:
        await conn.close()

    assert {r["name"]: r["value"] for r in rows} == postgres_tuning(memory)


def _literal(value: object) -> str:
    if isinstance(value, list):
        return "ARRAY[" + ",".join(_literal(v) for v in value) + "]::text[]"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def test_a_search_by_popular_tags_takes_the_tags_index(scratch: asyncpg.Connection) -> None:
    """Under the tuning, the planner costs rows as well as pages: two tags held by 40 % of a
    tenant's 10,000 POCs are found through the tags index, not by testing every POC of the
    tenant in date order (as PostgreSQL's default page costs choose)."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("DATABASE_URL is set: the suite runs on an external server")
    await apply_migrations(scratch)
    tenant, user = await insert_tenant(scratch)
    # One POC in three is a prototype, one in six backend; every one has four tags of 40 and
    # a paragraph of description, stored oldest first like POCs created over time.
    await scratch.execute(
        """INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags,
                             created_at)
           SELECT gen_random_uuid(), $1, $2, 'POC ' || i, repeat('lorem ipsum dolor ', 30),
                  (ARRAY['Python', 'Go', 'Rust', 'Java'])[1 + i % 4],
                  ARRAY[CASE WHEN i % 3 = 0 THEN 'prototype' ELSE 'p' || i % 7 END,
                        CASE WHEN i % 6 = 1 THEN 'backend' ELSE 'b' || i % 11 END,
                        't' || i % 13, 'u' || i % 17],
                  now() - (10000 - i) * interval '1 minute'
           FROM generate_series(1, 10000) AS i""",
        tenant,
        user,
    )
    await scratch.execute("ANALYZE pocs")
    statement, params = build_search(tenant, PocQuery(tags=("prototype", "backend")))
    for n in range(len(params), 0, -1):
        statement = statement.replace(f"${n}", _literal(params[n - 1]))
    async with scratch.transaction():
        await scratch.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
        plan = "\n".join(r[0] for r in await scratch.fetch(f"EXPLAIN {statement}"))

    assert re.search(r"Bitmap Index Scan on pocs_p\d+_tenant_id_tags_idx", plan), plan
