"""Helpers for tests that drive the REST API: accounts, signup, login, error checks."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

PASSWORD = "Str0ng!Passw0rd"


def unique(prefix: str = "t") -> str:
    """A short name no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Account:
    """A user that can log in, with its current tokens."""

    tenant_id: str
    domain: str
    user_id: str
    username: str
    password: str
    role: str
    token: str = ""
    refresh_token: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def session_id(self) -> str:
        """The login session the access token names."""
        sid: str = jwt.decode(self.token, options={"verify_signature": False})["sid"]
        return sid


def signup_body(
    domain: str, username: str, name: str = "Acme Labs", plan: str = "standard"
) -> dict[str, Any]:
    """The body of ``POST /v1/tenants``: a tenant and its admin, whose password is PASSWORD."""
    return {
        "name": name,
        "domain": domain,
        "contactEmail": f"ops@{domain}",
        "plan": plan,
        "admin": {
            "username": username,
            "email": f"{username}@{domain}",
            "fullName": "Ada Admin",
            "password": PASSWORD,
        },
    }


async def signup(client: TestClient[Any, Any], **fields: Any) -> Account:
    """Create a tenant with its admin and log the admin in."""
    domain = fields.pop("domain", f"{unique('d')}.example")
    username = fields.pop("username", unique("admin"))
    body = {
        **signup_body(
            domain, username, fields.pop("name", "Acme Labs"), fields.pop("plan", "standard")
        ),
        **fields,
    }
    resp = await client.post("/v1/tenants", json=body)
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    account = Account(
        tenant_id=data["tenantId"],
        domain=domain,
        user_id=data["admin"]["userId"],
        username=username,
        password=PASSWORD,
        role="admin",
    )
    await login(client, account)
    return account


async def login(client: TestClient[Any, Any], account: Account) -> None:
    """Log ``account`` in and keep its tokens."""
    resp = await client.post(
        "/v1/auth/login",
        json={
            "username": account.username,
            "password": account.password,
            "tenantId": account.tenant_id,
        },
    )
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    account.token, account.refresh_token = data["token"], data["refreshToken"]


async def register(
    client: TestClient[Any, Any], admin: Account, *, role: str = "user", log_in: bool = True
) -> Account:
    """Register a user in ``admin``'s tenant and (by default) log it in."""
    username = unique("u")
    resp = await client.post(
        "/v1/users/register",
        headers=admin.auth,
        json={
            "username": username,
            "password": PASSWORD,
            "email": f"{username}@{admin.domain}",
            "fullName": "Uma User",
            "tenantId": admin.tenant_id,
            "role": role,
        },
    )
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    account = Account(
        tenant_id=admin.tenant_id,
        domain=admin.domain,
        user_id=data["userId"],
        username=username,
        password=PASSWORD,
        role=role,
    )
    if log_in:
        await login(client, account)
    return account


async def error_of(resp: Any) -> dict[str, Any]:
    """The ``error`` object of a failure response (asserting its shape)."""
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"]), body
    error: dict[str, Any] = body["error"]
    return error


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    """Poll a condition that no event announces (e.g. a room unloading, a row a background
    task deletes) until it holds; ``predicate`` may be a coroutine function.

    Raises:
        TimeoutError: it did not hold within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(0.01)


async def end_process(proc: asyncio.subprocess.Process, within: float = 5.0) -> None:
    """End a child that exits when its stdin ends (the Node scripts of the tests): close its
    stdin, wait, and kill it if it lingers."""
    if proc.stdin is not None:
        proc.stdin.close()
        with contextlib.suppress(ConnectionError):
            await proc.stdin.wait_closed()
    try:
        await asyncio.wait_for(proc.wait(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
