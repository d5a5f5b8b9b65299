"""The embedded PostgreSQL is sized from the machine's memory, not left on its defaults."""

from __future__ import annotations

import os

import asyncpg
import pytest

from pocdojo.core.embedded import postgres_tuning
from tests.conftest import Engines

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
    assert tuning["random_page_cost"] == 1.1


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
