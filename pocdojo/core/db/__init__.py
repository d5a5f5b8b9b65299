"""PostgreSQL access: the application pool and tenant-scoped transactions.

The pool connects as ``pocdojo_app``, a role that owns no table, so row-level security binds
every query. ``tenant_tx`` opens a transaction with ``app.tenant_id`` set for its duration.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg

APP_ROLE = "pocdojo_app"


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: nothing beyond what asyncpg
    already does first (rolling back an open transaction).

    The default reset (RESET ALL, CLOSE ALL, UNLISTEN *, unlocking advisory locks) costs a
    round trip per request, for session state this application never makes: the tenant is
    set per transaction (``set_config(..., true)``), locks are transaction locks, and
    cursors live inside transactions.
    """


async def open_pool(
    owner_dsn: str, app_dsn: str | None, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """Open the application's pool.

    Args:
        owner_dsn: the owner's connection string, used with ``role=pocdojo_app`` when no
            separate application login is given.
        app_dsn: a connection string that logs in as ``pocdojo_app`` itself, if there is one.
        min_size: connections kept open.
        max_size: connections at most.
    """
    # JIT compilation pays off for long analytic queries; ours are short, and a search whose
    # estimated cost crosses jit_above_cost would spend tens of milliseconds compiling.
    # Statements are prepared once per connection (asyncpg caches them); a generic plan
    # skips planning on every execution. PostgreSQL would keep re-planning statements on the
    # partitioned POC table, whose generic plans it costs over every partition although
    # all but one are pruned when they run: 3-5 ms of a 10 ms search at a million POCs.
    server_settings = {
        "application_name": "pocdojo",
        "jit": "off",
        "plan_cache_mode": "force_generic_plan",
    }
    if app_dsn is None:
        # The session user is the owner but the current role is pocdojo_app, and RLS is
        # decided by the current role. A startup setting, it lasts the connection's life.
        server_settings["role"] = APP_ROLE
    pool = await asyncpg.create_pool(
        app_dsn or owner_dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=server_settings,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def tenant_tx(pool: asyncpg.Pool, tenant_id: UUID | None) -> AsyncIterator[Any]:
    """A transaction in which row-level security shows only ``tenant_id``'s rows.

    With ``tenant_id`` None no tenant is set, and every tenant-owned table looks empty.
    """
    async with pool.acquire() as conn, conn.transaction():
        if tenant_id is not None:
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", str(tenant_id))
        yield conn


async def update_returning(
    conn: Any,
    table: str,
    row_id: Any,
    changes: dict[str, Any],
    columns: str,
    *,
    tenant_id: UUID | None = None,
) -> Any:
    """``UPDATE table SET <changes>, updated_at = now() WHERE id = row_id RETURNING columns``.

    With ``tenant_id`` the row must also be that tenant's (partitioned tables need it named
    to prune). Table and column names come from the repositories' own constants, never from
    input; values are always parameters.
    """
    start = 2 if tenant_id is None else 3
    assigns = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=start))
    where = "id = $1" if tenant_id is None else "id = $1 AND tenant_id = $2"
    keys = [row_id] if tenant_id is None else [row_id, tenant_id]
    return await conn.fetchrow(
        f"UPDATE {table} SET {assigns}, updated_at = now() WHERE {where} RETURNING {columns}",
        *keys,
        *changes.values(),
    )
