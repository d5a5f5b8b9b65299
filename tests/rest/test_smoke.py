from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import Account


async def test_admin_reads_own_profile(client: TestClient[Any, Any], admin: Account) -> None:
    resp = await client.get("/v1/users/me", headers=admin.auth)
    assert resp.status == 200
    body = await resp.json()
    assert body["userId"] == admin.user_id
    assert body["role"] == "admin"
