"""Fixtures of the core tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import Engines
from tests.core.migration_helpers import with_database


@pytest.fixture
async def scratch(engines: Engines) -> AsyncIterator[asyncpg.Connection]:
    """An empty database of its own on the suite's server, as its owner."""
    name = f"mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(engines.database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    except asyncpg.InsufficientPrivilegeError:
        await admin.close()
        pytest.skip("the test database's owner may not create databases")
    conn = await asyncpg.connect(with_database(engines.database_url, name))
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
