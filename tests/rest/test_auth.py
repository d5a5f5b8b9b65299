"""Login, access-token checks, refresh-token rotation, logout, login rate limits and audit."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import jwt
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from pocdojo.core.settings import Settings
from tests.conftest import TEST_JWT_SECRET, Engines
from tests.helpers import PASSWORD, Account, error_of, login, register, signup, unique

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

DEFAULT_ACCESS_TTL = 900


# --- helpers ---------------------------------------------------------------------------------


def fresh_ip() -> str:
    """A client address no other test uses, so per-IP counters start at zero."""
    return str(ipaddress.IPv6Address(uuid.uuid4().int))


async def post_login(
    client: Client,
    username: str,
    password: str,
    tenant: str,
    *,
    ip: str | None = None,
    request_id: str | None = None,
) -> ClientResponse:
    headers = {"X-Forwarded-For": ip or fresh_ip()}
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    return await client.post(
        "/v1/auth/login",
        json={"username": username, "password": password, "tenantId": tenant},
        headers=headers,
    )


async def post_refresh(client: Client, refresh_token: str, user_id: str) -> ClientResponse:
    return await client.post(
        "/v1/auth/refresh", json={"refreshToken": refresh_token, "userId": user_id}
    )


async def post_logout(client: Client, user_id: str, token: str) -> ClientResponse:
    return await client.post("/v1/auth/logout", json={"userId": user_id, "token": token})


async def get_me(client: Client, token: str) -> ClientResponse:
    return await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})


async def new_session(client: Client, account: Account) -> Account:
    """A second, independent login session of the same user."""
    other = Account(**{**account.__dict__, "token": "", "refresh_token": ""})
    await login(client, other)
    assert other.token != account.token
    return other


async def deactivate(client: Client, admin: Account, user: Account) -> None:
    resp = await client.patch(
        f"/v1/users/{user.user_id}", headers=admin.auth, json={"isActive": False}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["isActive"] is False


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def sign(claims: dict[str, Any], secret: str = TEST_JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def expired_copy(token: str) -> str:
    """The same claims, correctly signed, but expired a while ago."""
    now = int(time.time())
    return sign({**unverified_claims(token), "iat": now - 3600, "exp": now - 1800})


async def assert_unauthorized(resp: ClientResponse, code: str | None = None) -> dict[str, Any]:
    """A 401 with the error shape and a WWW-Authenticate challenge; returns the error."""
    assert resp.status == 401, await resp.text()
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
    error = await error_of(resp)
    if code is not None:
        assert error["code"] == code, error
    return error


def retry_after(resp: ClientResponse) -> int:
    raw = resp.headers.get("Retry-After")
    assert raw is not None
    assert raw.isdigit(), raw
    return int(raw)


# --- login -----------------------------------------------------------------------------------


async def test_login_by_tenant_id_returns_tokens(client: Client, admin: Account) -> None:
    resp = await post_login(client, admin.username, PASSWORD, admin.tenant_id)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body) == {
        "userId",
        "token",
        "tenantId",
        "refreshToken",
        "expiresIn",
        "tokenType",
        "role",
    }
    assert body["userId"] == admin.user_id
    assert body["tenantId"] == admin.tenant_id
    assert body["expiresIn"] == DEFAULT_ACCESS_TTL
    assert body["tokenType"] == "Bearer"
    assert body["role"] == "admin"
    assert body["refreshToken"].startswith(UUID(admin.tenant_id).hex + ".")
    assert body["refreshToken"] != admin.refresh_token

    claims = jwt.decode(body["token"], TEST_JWT_SECRET, algorithms=["HS256"], issuer="pocdojo")
    assert claims["sub"] == admin.user_id
    assert claims["tid"] == admin.tenant_id
    assert claims["exp"] - claims["iat"] == body["expiresIn"]

    me = await get_me(client, body["token"])
    assert me.status == 200
    assert (await me.json())["userId"] == admin.user_id


@pytest.mark.parametrize("spell", [str.lower, str.upper, str.swapcase])
async def test_login_by_domain_is_case_insensitive(
    client: Client, spell: Callable[[str], str]
) -> None:
    domain = f"{unique('Dom')}.Example"
    admin = await signup(client, domain=domain)
    resp = await post_login(client, admin.username, PASSWORD, spell(domain))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["tenantId"] == admin.tenant_id
    assert body["userId"] == admin.user_id


async def test_login_sets_last_login(client: Client, admin: Account) -> None:
    user = await register(client, admin, log_in=False)
    before = await client.get(f"/v1/users/{user.user_id}", headers=admin.auth)
    assert before.status == 200
    assert (await before.json())["lastLogin"] is None

    started = datetime.now(UTC)
    await login(client, user)
    resp = await get_me(client, user.token)
    assert resp.status == 200
    last_login = (await resp.json())["lastLogin"]
    assert last_login is not None
    # Both clocks are this machine's; allow a little skew between Python and PostgreSQL.
    assert (datetime.fromisoformat(last_login) - started).total_seconds() > -5


async def test_login_failures_are_indistinguishable(client: Client, admin: Account) -> None:
    attempts = [
        (admin.username, "Wr0ng!Password", admin.tenant_id),  # wrong password
        (unique("nobody"), PASSWORD, admin.tenant_id),  # unknown username
        (admin.username, PASSWORD, str(uuid.uuid4())),  # unknown tenant id
        (admin.username, PASSWORD, f"{unique('nowhere')}.example"),  # unknown tenant domain
    ]
    errors = []
    for username, password, tenant in attempts:
        resp = await post_login(client, username, password, tenant)
        errors.append(await assert_unauthorized(resp, "invalid_credentials"))
    assert all(error == errors[0] for error in errors), errors


@pytest.mark.parametrize("field", ["username", "tenantId"])
async def test_login_with_a_nul_in_a_name_is_401(
    client: Client, admin: Account, field: str
) -> None:
    # No stored name can hold one: PostgreSQL text cannot.
    names = {"username": admin.username, "tenantId": admin.tenant_id}
    names[field] += "\x00"
    resp = await post_login(client, names["username"], PASSWORD, names["tenantId"])
    await assert_unauthorized(resp, "invalid_credentials")


@pytest.mark.parametrize("missing", ["username", "password", "tenantId"])
async def test_login_missing_field_is_422(client: Client, admin: Account, missing: str) -> None:
    body = {"username": admin.username, "password": PASSWORD, "tenantId": admin.tenant_id}
    del body[missing]
    resp = await client.post("/v1/auth/login", json=body)
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    assert [d["field"] for d in error["details"]] == [missing]


async def test_login_non_json_is_400(client: Client) -> None:
    resp = await client.post(
        "/v1/auth/login",
        data=b'{"username": "a", "password": ',
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400, await resp.text()
    assert (await error_of(resp))["code"] == "invalid_json"


async def test_login_wrong_content_type_is_415(client: Client, admin: Account) -> None:
    resp = await client.post(
        "/v1/auth/login",
        data={"username": admin.username, "password": PASSWORD, "tenantId": admin.tenant_id},
    )
    assert resp.status == 415, await resp.text()
    assert (await error_of(resp))["code"] == "unsupported_media_type"


async def test_deactivated_user_cannot_log_in(client: Client, admin: Account) -> None:
    user = await register(client, admin, log_in=False)
    await deactivate(client, admin, user)
    resp = await post_login(client, user.username, PASSWORD, admin.tenant_id)
    error = await assert_unauthorized(resp, "invalid_credentials")
    # Same answer as a wrong password: deactivation is not revealed.
    wrong = await post_login(client, admin.username, "Wr0ng!Password", admin.tenant_id)
    assert error == await assert_unauthorized(wrong)


# --- access tokens ---------------------------------------------------------------------------


async def test_me_without_authorization_header_is_401(client: Client) -> None:
    resp = await client.get("/v1/users/me")
    await assert_unauthorized(resp, "missing_token")


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT", ""])
async def test_me_with_wrong_scheme_is_401(client: Client, admin: Account, scheme: str) -> None:
    # A valid token, so only the scheme can be the reason for the refusal.
    header = f"{scheme} {admin.token}" if scheme else admin.token
    resp = await client.get("/v1/users/me", headers={"Authorization": header})
    await assert_unauthorized(resp, "missing_token")


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "e30.e30.e30"])
async def test_me_with_garbage_token_is_401(client: Client, token: str) -> None:
    resp = await get_me(client, token)
    await assert_unauthorized(resp, "invalid_token")


async def test_me_with_forged_signature_is_401(client: Client, admin: Account) -> None:
    forged = sign(unverified_claims(admin.token), "another-secret-" + "y" * 40)
    resp = await get_me(client, forged)
    await assert_unauthorized(resp, "invalid_token")


async def test_me_with_unsigned_token_is_401(client: Client, admin: Account) -> None:
    unsigned = jwt.encode(unverified_claims(admin.token), "", algorithm="none")
    resp = await get_me(client, unsigned)
    await assert_unauthorized(resp, "invalid_token")


async def test_me_with_expired_token_is_401(client: Client, admin: Account) -> None:
    resp = await get_me(client, expired_copy(admin.token))
    await assert_unauthorized(resp, "token_expired")


async def test_me_with_logged_out_session_is_401(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    assert (await get_me(client, user.token)).status == 200
    resp = await post_logout(client, user.user_id, user.refresh_token)
    assert resp.status == 200, await resp.text()
    await assert_unauthorized(await get_me(client, user.token), "session_revoked")


async def test_me_of_deactivated_user_is_401(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    assert (await get_me(client, user.token)).status == 200
    await deactivate(client, admin, user)
    await assert_unauthorized(await get_me(client, user.token))


async def test_tokens_of_user_deactivated_without_session_revocation_fail(
    client: Client, admin: Account, engines: Engines
) -> None:
    """The user's active flag is checked on every request, not only through revoked sessions
    (a deactivation made outside the API leaves the sessions open)."""
    user = await register(client, admin)
    conn = await asyncpg.connect(engines.database_url)
    try:
        await conn.execute("UPDATE users SET is_active = false WHERE id = $1", UUID(user.user_id))
        still_open = await conn.fetchval(
            "SELECT count(*) FROM auth_sessions WHERE user_id = $1 AND revoked_at IS NULL",
            UUID(user.user_id),
        )
    finally:
        await conn.close()
    assert still_open == 1
    await assert_unauthorized(await get_me(client, user.token), "session_revoked")
    await assert_unauthorized(await post_refresh(client, user.refresh_token, user.user_id))


async def test_tokens_of_expired_session_fail(
    client: Client, admin: Account, engines: Engines
) -> None:
    user = await register(client, admin)
    sid = UUID(unverified_claims(user.token)["sid"])
    conn = await asyncpg.connect(engines.database_url)
    try:
        await conn.execute(
            "UPDATE auth_sessions SET expires_at = now() - interval '1 second' WHERE id = $1", sid
        )
    finally:
        await conn.close()
    await assert_unauthorized(await get_me(client, user.token), "session_revoked")
    resp = await post_refresh(client, user.refresh_token, user.user_id)
    await assert_unauthorized(resp, "session_revoked")


# --- refresh ---------------------------------------------------------------------------------


async def test_refresh_rotates_both_tokens(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    resp = await post_refresh(client, user.refresh_token, user.user_id)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body) == {"token", "refreshToken", "expiresIn", "tokenType"}
    assert body["expiresIn"] == DEFAULT_ACCESS_TTL
    assert body["tokenType"] == "Bearer"
    assert body["refreshToken"] != user.refresh_token
    assert body["refreshToken"].startswith(UUID(user.tenant_id).hex + ".")
    # Same session, same user.
    old, new = unverified_claims(user.token), unverified_claims(body["token"])
    assert (new["sid"], new["sub"], new["role"]) == (old["sid"], user.user_id, "user")

    me = await get_me(client, body["token"])
    assert me.status == 200
    assert (await me.json())["userId"] == user.user_id
    again = await post_refresh(client, body["refreshToken"], user.user_id)
    assert again.status == 200, await again.text()


async def test_refresh_token_reuse_revokes_the_whole_family(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    bystander = await new_session(client, user)
    first = await post_refresh(client, user.refresh_token, user.user_id)
    assert first.status == 200
    rotated = await first.json()

    reuse = await post_refresh(client, user.refresh_token, user.user_id)
    await assert_unauthorized(reuse, "refresh_token_reused")

    # Every token of that session is now dead: the newest refresh token, the access token
    # issued with it and the access token of the original login.
    await assert_unauthorized(await post_refresh(client, rotated["refreshToken"], user.user_id))
    await assert_unauthorized(await get_me(client, rotated["token"]), "session_revoked")
    await assert_unauthorized(await get_me(client, user.token), "session_revoked")
    # The user's other session is untouched.
    assert (await get_me(client, bystander.token)).status == 200
    assert (await post_refresh(client, bystander.refresh_token, user.user_id)).status == 200


async def test_refresh_with_wrong_user_id_is_401(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    resp = await post_refresh(client, user.refresh_token, admin.user_id)
    await assert_unauthorized(resp, "invalid_token")
    resp = await post_refresh(client, user.refresh_token, str(uuid.uuid4()))
    await assert_unauthorized(resp, "invalid_token")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "not-hex." + "a" * 43,
        uuid.uuid4().hex + ".short",
        uuid.uuid4().hex + "." + secrets.token_urlsafe(32),
        "." + secrets.token_urlsafe(32),
    ],
)
async def test_refresh_with_malformed_token_is_401(
    client: Client, admin: Account, token: str
) -> None:
    resp = await post_refresh(client, token, admin.user_id)
    await assert_unauthorized(resp, "invalid_token")


async def test_refresh_with_well_formed_but_unknown_token_of_own_tenant_is_401(
    client: Client, admin: Account
) -> None:
    token = UUID(admin.tenant_id).hex + "." + secrets.token_urlsafe(32)
    await assert_unauthorized(await post_refresh(client, token, admin.user_id), "invalid_token")


async def test_refresh_with_forged_tenant_prefix_is_401(client: Client, admin: Account) -> None:
    other = await signup(client)
    _, _, secret_part = admin.refresh_token.partition(".")
    forged = UUID(other.tenant_id).hex + "." + secret_part
    await assert_unauthorized(await post_refresh(client, forged, admin.user_id), "invalid_token")
    await assert_unauthorized(await post_refresh(client, forged, other.user_id), "invalid_token")
    # The genuine token was not consumed by the forged attempts.
    assert (await post_refresh(client, admin.refresh_token, admin.user_id)).status == 200


async def test_deactivated_user_cannot_refresh(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    await deactivate(client, admin, user)
    await assert_unauthorized(await post_refresh(client, user.refresh_token, user.user_id))


async def test_concurrent_refresh_with_one_token_succeeds_once(
    client: Client, admin: Account
) -> None:
    user = await register(client, admin)
    responses = await asyncio.gather(
        post_refresh(client, user.refresh_token, user.user_id),
        post_refresh(client, user.refresh_token, user.user_id),
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 401], statuses
    loser = next(r for r in responses if r.status == 401)
    await assert_unauthorized(loser, "refresh_token_reused")


# --- logout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["access", "refresh"])
async def test_logout_ends_only_that_session(client: Client, admin: Account, by: str) -> None:
    user = await register(client, admin)
    other = await new_session(client, user)
    resp = await post_logout(
        client, user.user_id, user.token if by == "access" else user.refresh_token
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert set(body) == {"success", "message"}
    assert body["success"] is True
    assert isinstance(body["message"], str)
    assert body["message"]

    await assert_unauthorized(await get_me(client, user.token), "session_revoked")
    await assert_unauthorized(await post_refresh(client, user.refresh_token, user.user_id))
    assert (await get_me(client, other.token)).status == 200
    assert (await post_refresh(client, other.refresh_token, user.user_id)).status == 200


async def test_logout_with_expired_access_token(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    resp = await post_logout(client, user.user_id, expired_copy(user.token))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["success"] is True
    await assert_unauthorized(await get_me(client, user.token), "session_revoked")
    await assert_unauthorized(await post_refresh(client, user.refresh_token, user.user_id))


@pytest.mark.parametrize("by", ["access", "refresh"])
async def test_logout_with_another_users_id_is_401(client: Client, admin: Account, by: str) -> None:
    user = await register(client, admin)
    token = user.token if by == "access" else user.refresh_token
    await assert_unauthorized(await post_logout(client, admin.user_id, token), "invalid_token")
    # Nothing was ended.
    assert (await get_me(client, user.token)).status == 200
    assert (await post_refresh(client, user.refresh_token, user.user_id)).status == 200


async def test_logout_with_forged_access_token_is_401(client: Client, admin: Account) -> None:
    forged = sign(unverified_claims(admin.token), "another-secret-" + "y" * 40)
    await assert_unauthorized(await post_logout(client, admin.user_id, forged), "invalid_token")
    assert (await get_me(client, admin.token)).status == 200


# --- rate limiting ---------------------------------------------------------------------------


async def test_account_is_locked_after_too_many_failures(
    make_client: MakeClient, client: Client, admin: Account, settings: Settings
) -> None:
    limited = await make_client(login_fail_limit_account=3)
    user = await register(client, admin, log_in=False)
    ip = fresh_ip()
    for _ in range(3):
        resp = await post_login(limited, user.username, "Wr0ng!Password", admin.tenant_id, ip=ip)
        await assert_unauthorized(resp, "invalid_credentials")

    # The right password does not help, from this IP or any other.
    for source in (ip, fresh_ip()):
        resp = await post_login(limited, user.username, PASSWORD, admin.tenant_id, ip=source)
        assert resp.status == 429, await resp.text()
        assert (await error_of(resp))["code"] == "rate_limited"
        assert 0 < retry_after(resp) <= settings.login_fail_window

    # Only that account is locked: another user of the tenant logs in from the same IP.
    resp = await post_login(limited, admin.username, PASSWORD, admin.tenant_id, ip=ip)
    assert resp.status == 200, await resp.text()


async def test_account_lock_also_applies_when_tenant_is_named_by_domain(
    make_client: MakeClient, client: Client, admin: Account
) -> None:
    limited = await make_client(login_fail_limit_account=3)
    user = await register(client, admin, log_in=False)
    for _ in range(3):
        resp = await post_login(limited, user.username, "Wr0ng!Password", admin.tenant_id)
        await assert_unauthorized(resp, "invalid_credentials")
    # Same account, tenant named by its domain instead of its id: still locked.
    resp = await post_login(limited, user.username, PASSWORD, admin.domain)
    assert resp.status == 429, await resp.text()


async def test_ip_is_limited_across_usernames(
    make_client: MakeClient, client: Client, admin: Account
) -> None:
    limited = await make_client(login_fail_limit_ip=3)
    ip = fresh_ip()
    for _ in range(3):
        resp = await post_login(limited, unique("nobody"), PASSWORD, admin.tenant_id, ip=ip)
        await assert_unauthorized(resp, "invalid_credentials")

    resp = await post_login(limited, admin.username, PASSWORD, admin.tenant_id, ip=ip)
    assert resp.status == 429, await resp.text()
    assert retry_after(resp) > 0
    resp = await post_login(limited, admin.username, PASSWORD, admin.tenant_id, ip=fresh_ip())
    assert resp.status == 200, await resp.text()


async def test_each_user_has_a_budget_of_requests_per_minute(
    make_client: MakeClient, client: Client, admin: Account
) -> None:
    limited = await make_client(requests_per_minute_user=3)
    user = await register(client, admin)
    for _ in range(3):
        assert (await get_me(limited, user.token)).status == 200

    resp = await get_me(limited, user.token)

    assert resp.status == 429, await resp.text()
    assert (await error_of(resp))["code"] == "rate_limited"
    assert 0 < retry_after(resp) <= 60
    assert (await get_me(limited, admin.token)).status == 200  # a budget of its own


async def test_ip_limit_counts_the_address_the_proxy_saw(
    make_client: MakeClient, client: Client, admin: Account
) -> None:
    """A proxy appends the peer's address to X-Forwarded-For and keeps whatever the client
    sent in front of it, so only the last hop is trustworthy: prepending a made-up address
    must not give a fresh per-IP budget."""
    limited = await make_client(login_fail_limit_ip=3)
    real = fresh_ip()
    for _ in range(3):
        resp = await post_login(limited, unique("nobody"), PASSWORD, admin.tenant_id, ip=real)
        await assert_unauthorized(resp, "invalid_credentials")
    spoofed = f"{fresh_ip()}, {real}"
    resp = await post_login(limited, admin.username, PASSWORD, admin.tenant_id, ip=spoofed)
    assert resp.status == 429, await resp.text()


async def test_successful_login_resets_account_counter(
    make_client: MakeClient, client: Client, admin: Account
) -> None:
    limited = await make_client(login_fail_limit_account=3)
    user = await register(client, admin, log_in=False)
    ip = fresh_ip()

    async def fail_twice() -> None:
        for _ in range(2):
            resp = await post_login(
                limited, user.username, "Wr0ng!Password", admin.tenant_id, ip=ip
            )
            await assert_unauthorized(resp, "invalid_credentials")

    await fail_twice()
    resp = await post_login(limited, user.username, PASSWORD, admin.tenant_id, ip=ip)
    assert resp.status == 200, await resp.text()
    # Without the reset this would be the fourth failure, over the limit of three.
    await fail_twice()
    resp = await post_login(limited, user.username, PASSWORD, admin.tenant_id, ip=ip)
    assert resp.status == 200, await resp.text()


async def test_successful_logins_do_not_count_against_the_ip(
    make_client: MakeClient, admin: Account
) -> None:
    limited = await make_client(login_fail_limit_ip=2)
    ip = fresh_ip()
    for _ in range(4):
        resp = await post_login(limited, admin.username, PASSWORD, admin.tenant_id, ip=ip)
        assert resp.status == 200, await resp.text()
    for _ in range(2):
        resp = await post_login(limited, admin.username, "Wr0ng!Password", admin.tenant_id, ip=ip)
        await assert_unauthorized(resp, "invalid_credentials")
    resp = await post_login(limited, admin.username, PASSWORD, admin.tenant_id, ip=ip)
    assert resp.status == 429, await resp.text()


@pytest.mark.parametrize("limit", ["account", "ip"])
async def test_parallel_failures_verify_at_most_the_limit(
    make_client: MakeClient, client: Client, admin: Account, limit: str, redis_mode: dict[str, Any]
) -> None:
    """The limit holds for attempts sent at once: each reserves its place before the password
    is verified, so no more than the limit are verified and the rest get 429. On a cluster too,
    where the address's and the account's counters are on different shards."""
    limited = await make_client(**redis_mode, **{f"login_fail_limit_{limit}": 5})
    user = await register(client, admin, log_in=False)
    ip = fresh_ip()
    # Against the account from many addresses, or from one address against many names.
    by_account = limit == "account"
    attempts = [
        (user.username, fresh_ip()) if by_account else (unique("nobody"), ip) for _ in range(40)
    ]
    flood = await asyncio.gather(
        *(
            post_login(limited, name, "Wr0ng!Password", admin.tenant_id, ip=source)
            for name, source in attempts
        )
    )
    answers = Counter(resp.status for resp in flood)
    assert answers == {401: 5, 429: 35}, answers

    # The right password, sent after the flood, is refused too.
    source = fresh_ip() if by_account else ip
    resp = await post_login(limited, user.username, PASSWORD, admin.tenant_id, ip=source)
    assert resp.status == 429, await resp.text()
    assert retry_after(resp) > 0


async def test_account_lock_holds_for_spellings_the_database_folds_to_the_name(
    make_client: MakeClient, client: Client
) -> None:
    """PostgreSQL's lower() turns 'İ' (U+0130) into 'i' where Python's gives 'i' and a combining
    dot, so such a spelling finds the account: it must find the account's lock as well."""
    limited = await make_client(login_fail_limit_account=5)
    victim = await signup(client, username=unique("victim"))
    variant = victim.username.replace("i", "\u0130")
    assert variant.lower() != victim.username.lower()  # Python alone would not match them

    # The database does match them: the variant spelling logs in as the victim.
    resp = await post_login(limited, variant, PASSWORD, victim.tenant_id)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["userId"] == victim.user_id

    for _ in range(5):
        resp = await post_login(limited, victim.username, "Wr0ng!Password", victim.tenant_id)
        await assert_unauthorized(resp, "invalid_credentials")
    for spelling in (variant, variant.upper(), victim.username.upper()):
        resp = await post_login(limited, spelling, PASSWORD, victim.tenant_id)
        assert resp.status == 429, (spelling, await resp.text())


# --- audit -----------------------------------------------------------------------------------


async def audit_rows(engines: Engines, tenant_id: str, request_id: str) -> list[dict[str, Any]]:
    """Audit rows of one request, read as the owner (row-level security does not apply)."""
    conn = await asyncpg.connect(engines.database_url)
    try:
        rows = await conn.fetch(
            """SELECT action, entity_type, entity_id, user_id, ip_address,
                      metadata->>'username' AS username
               FROM audit_log WHERE tenant_id = $1 AND request_id = $2""",
            UUID(tenant_id),
            request_id,
        )
    finally:
        await conn.close()
    return [dict(row) for row in rows]


async def test_login_success_is_audited_with_request_id(
    client: Client, admin: Account, engines: Engines
) -> None:
    request_id, ip = unique("req-"), fresh_ip()
    resp = await post_login(
        client, admin.username, PASSWORD, admin.tenant_id, ip=ip, request_id=request_id
    )
    assert resp.status == 200, await resp.text()
    assert resp.headers["X-Request-ID"] == request_id
    session_id = UUID(unverified_claims((await resp.json())["token"])["sid"])

    rows = await audit_rows(engines, admin.tenant_id, request_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["action"], row["entity_type"], row["entity_id"]) == ("login", "session", session_id)
    assert row["user_id"] == UUID(admin.user_id)
    assert row["ip_address"] == ip


async def test_login_failure_is_audited_with_request_id(
    client: Client, admin: Account, engines: Engines
) -> None:
    request_id, ip = unique("req-"), fresh_ip()
    resp = await post_login(
        client, admin.username, "Wr0ng!Password", admin.tenant_id, ip=ip, request_id=request_id
    )
    await assert_unauthorized(resp, "invalid_credentials")
    assert resp.headers["X-Request-ID"] == request_id

    rows = await audit_rows(engines, admin.tenant_id, request_id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["action"], row["entity_type"]) == ("login_failed", "user")
    assert row["user_id"] == row["entity_id"] == UUID(admin.user_id)
    assert row["username"] == admin.username
    assert row["ip_address"] == ip
