"""The plans the search statement gets as the application runs it: generic, prepared once
per connection (the pool forces generic plans), over a tenant of 10,000 POCs."""

from __future__ import annotations

import re
from uuid import UUID

import asyncpg
import pytest

from pocdojo.core.search import PocQuery
from pocdojo.core.search.postgres import build_search
from tests.core.migration_helpers import apply_migrations, insert_tenant


def _literal(value: object) -> str:
    if isinstance(value, list):
        return "ARRAY[" + ",".join(_literal(v) for v in value) + "]::text[]"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def _generic_plan(conn: asyncpg.Connection, tenant: UUID, query: PocQuery) -> str:
    statement, params = build_search(tenant, query)
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant))
        await conn.execute(f"PREPARE search AS {statement}")
        arguments = ", ".join(_literal(p) for p in params)
        rows = await conn.fetch(f"EXPLAIN EXECUTE search({arguments})")
        await conn.execute("DEALLOCATE search")
    return "\n".join(r[0] for r in rows)


@pytest.fixture
async def tenant(scratch: asyncpg.Connection) -> UUID:
    """A tenant of 10,000 POCs, a fifth of them in Python, stored oldest first."""
    await apply_migrations(scratch)
    tenant, user = await insert_tenant(scratch)
    await scratch.execute(
        """INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags,
                             created_at)
           SELECT gen_random_uuid(), $1, $2, 'POC ' || i, repeat('lorem ipsum dolor ', 30),
                  (ARRAY['Python', 'Go', 'Rust', 'Java', 'Kotlin'])[1 + i % 5],
                  ARRAY['t' || i % 13, 'u' || i % 17],
                  now() - (10000 - i) * interval '1 minute'
           FROM generate_series(1, 10000) AS i""",
        tenant,
        user,
    )
    await scratch.execute("ANALYZE pocs")
    return tenant


@pytest.mark.parametrize(
    "page_costs",
    [
        ("1", "1.1"),  # the tuning's: solid-state storage
        ("0.1", "0.11"),  # all in memory: reading many rows looks cheap
    ],
)
async def test_a_page_of_hits_is_fetched_by_key(
    scratch: asyncpg.Connection, tenant: UUID, page_costs: tuple[str, str]
) -> None:
    """The planner knows a page is 20 rows and reads their POCs by primary key, whatever the
    page costs. With the page size a parameter it counts a page as a tenth of the hits; on
    the benchmark's million POCs, with in-memory page costs, the generic plan then hashed
    every POC of the tenant to join 20 of them."""
    await scratch.execute(f"SET seq_page_cost = {page_costs[0]}")
    await scratch.execute(f"SET random_page_cost = {page_costs[1]}")

    plan = await _generic_plan(scratch, tenant, PocQuery(language="Python", page=3))

    page_join = plan[plan.rindex("InitPlan") :]  # the last: the page's POCs as JSON
    assert "Hash Join" not in page_join, plan
    assert re.search(r"Index Scan using pocs_p\d+_pkey", page_join), plan
    assert re.search(r"Limit  \(cost=[\d.]+ rows=20 ", page_join), plan
