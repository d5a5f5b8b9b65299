"""Fixtures of the attack suite: the two-tenant world and the owner's view of its rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import Engines
from tests.dojo_helpers import Client
from tests.security.world import Rows, World, make_world


@pytest.fixture
async def rows(engines: Engines) -> AsyncIterator[Rows]:
    """Reads the rows of any tenant as the database owner (past row-level security)."""
    conn = await asyncpg.connect(engines.database_url)
    try:
        yield Rows(conn)
    finally:
        await conn.close()


@pytest.fixture
async def world(client: Client) -> World:
    """Two tenants with someone of every role and one of everything in each."""
    return await make_world(client)
