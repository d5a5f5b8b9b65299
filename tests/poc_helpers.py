"""Helpers for the POC, search and favorites tests: bodies, calls, and owner-level SQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers import Account, error_of, unique

Client: TypeAlias = TestClient[Any, Any]
Params: TypeAlias = Mapping[str, str | int] | Sequence[tuple[str, str | int]]


def poc_body(account: Account, **overrides: Any) -> dict[str, Any]:
    """A valid registration body for a POC owned by ``account``."""
    body: dict[str, Any] = {
        "title": f"POC {unique('p')}",
        "description": "A proof of concept",
        "language": "Python",
        "tags": ["demo"],
        "userId": account.user_id,
        "tenantId": account.tenant_id,
    }
    body.update(overrides)
    return body


async def create_poc(client: Client, account: Account, **overrides: Any) -> dict[str, Any]:
    """Register a POC as ``account`` (asserting 201); returns the created POC."""
    resp = await client.post("/v1/pocs", headers=account.auth, json=poc_body(account, **overrides))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def get_ok(
    client: Client, account: Account, path: str, params: Params | None = None
) -> dict[str, Any]:
    """GET ``path`` as ``account``, asserting 200; returns the body."""
    resp = await client.get(path, headers=account.auth, params=params)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def read_poc(client: Client, account: Account, poc_id: str) -> dict[str, Any]:
    """GET one POC (which counts a view)."""
    return await get_ok(client, account, f"/v1/pocs/{poc_id}")


async def search(client: Client, account: Account, params: Params | None = None) -> dict[str, Any]:
    """GET /v1/pocs/search as ``account``."""
    return await get_ok(client, account, "/v1/pocs/search", params)


async def suggest(client: Client, account: Account, params: Params) -> dict[str, Any]:
    """GET /v1/pocs/suggest as ``account``."""
    return await get_ok(client, account, "/v1/pocs/suggest", params)


async def popular_tags(client: Client, account: Account, limit: int = 100) -> dict[str, int]:
    """The tenant's popular tags as ``{tag: count}`` (asserting they come most used first)."""
    data = await get_ok(client, account, "/v1/tags/popular", {"limit": limit})
    pairs = [(t["value"], t["count"]) for t in data["tags"]]
    assert pairs == sorted(pairs, key=lambda p: (-p[1], p[0])), pairs
    return dict(pairs)


async def update_poc(client: Client, account: Account, poc_id: str, body: Any) -> Any:
    """PUT a POC as ``account``; returns the response."""
    return await client.put(f"/v1/pocs/{poc_id}", headers=account.auth, json=body)


async def delete_poc(client: Client, account: Account, poc_id: str) -> None:
    """Soft-delete a POC as ``account`` (asserting 200)."""
    resp = await client.delete(f"/v1/pocs/{poc_id}", headers=account.auth)
    assert resp.status == 200, await resp.text()


async def add_favorite(client: Client, account: Account, poc_id: str) -> dict[str, Any]:
    """Add a favorite as ``account`` (asserting 201); returns it."""
    resp = await client.post(
        "/v1/favorites", headers=account.auth, json={"pocId": poc_id, "userId": account.user_id}
    )
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def expect_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a failure with ``status`` and ``code``; returns the error object."""
    assert resp.status == status, await resp.text()
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


def titles(result: Mapping[str, Any]) -> list[str]:
    """The titles of a list or search result, in order."""
    return [p["title"] for p in result["pocs"]]


def ids(result: Mapping[str, Any]) -> list[str]:
    """The POC ids of a list or search result, in order."""
    return [p["pocId"] for p in result["pocs"]]


def facet_counts(values: Iterable[str]) -> list[dict[str, Any]]:
    """Facet entries as the API gives them: most frequent first, then by value."""
    counts = Counter(values)
    return [
        {"value": v, "count": n} for v, n in sorted(counts.items(), key=lambda p: (-p[1], p[0]))
    ]


async def owner_fetchrow(database_url: str, sql: str, *args: Any) -> Any:
    """One row read as the database owner (row-level security does not apply)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


async def owner_execute(database_url: str, sql: str, *args: Any) -> None:
    """Run a statement as the database owner."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def db_poc(database_url: str, poc_id: str) -> Any:
    """The POC's row as stored (deleted ones included)."""
    return await owner_fetchrow(
        database_url,
        "SELECT title, status, deleted_at, view_count, favorite_count, tags "
        "FROM pocs WHERE id = $1::uuid",
        poc_id,
    )
