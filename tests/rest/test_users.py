"""Users: registration by an admin, profiles, listing and changes."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeAlias

import pytest
from aiohttp.test_utils import TestClient

from tests.dojo_helpers import create_dojo, create_poc
from tests.helpers import PASSWORD, Account, error_of, login, register, signup, unique

Client: TypeAlias = TestClient[Any, Any]

NEW_PASSWORD = "An0ther!Secret"

USER_FIELDS = {
    "userId",
    "username",
    "email",
    "fullName",
    "tenantId",
    "role",
    "isActive",
    "createdAt",
    "updatedAt",
    "lastLogin",
}


def register_body(admin: Account, **overrides: Any) -> dict[str, Any]:
    """A valid registration body for ``admin``'s tenant."""
    username = unique("u")
    body: dict[str, Any] = {
        "username": username,
        "password": PASSWORD,
        "email": f"{username}@{admin.domain}",
        "fullName": "Uma User",
        "tenantId": admin.tenant_id,
        "role": "user",
    }
    body.update(overrides)
    return body


async def expect_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a failure with ``status`` and ``code``; returns the error object."""
    assert resp.status == status, await resp.text()
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


async def expect_rejected(resp: Any, field: str) -> None:
    """Assert a 422 whose details name ``field``."""
    error = await expect_error(resp, 422, "validation_failed")
    assert any(d["field"] == field for d in error["details"]), error["details"]


async def read_user(client: Client, reader: Account, user_id: str) -> dict[str, Any]:
    """``user_id``'s profile as ``reader`` sees it."""
    resp = await client.get(f"/v1/users/{user_id}", headers=reader.auth)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def user_count(client: Client, admin: Account) -> int:
    """How many users ``admin``'s tenant has, as its tenant usage reports."""
    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=admin.auth)
    assert resp.status == 200, await resp.text()
    count: int = (await resp.json())["usage"]["userCount"]
    return count


async def login_status(client: Client, account: Account, password: str) -> int:
    resp = await client.post(
        "/v1/auth/login",
        json={"username": account.username, "password": password, "tenantId": account.tenant_id},
    )
    return resp.status


async def second_session(client: Client, account: Account) -> Account:
    """Another login of the same user, with its own tokens."""
    other = copy.copy(account)
    await login(client, other)
    assert other.token != account.token
    return other


# --- POST /v1/users/register ---------------------------------------------------------------------


async def test_register_creates_a_user(client: Client, admin: Account) -> None:
    body = register_body(admin, fullName="Grace Hopper", role="viewer")

    resp = await client.post("/v1/users/register", headers=admin.auth, json=body)

    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert set(data) == USER_FIELDS
    uuid.UUID(data["userId"])
    assert data["userId"] != admin.user_id
    assert data["username"] == body["username"]
    assert data["email"] == body["email"]
    assert data["fullName"] == "Grace Hopper"
    assert data["tenantId"] == admin.tenant_id
    assert data["role"] == "viewer"
    assert data["isActive"] is True
    assert data["lastLogin"] is None
    assert datetime.fromisoformat(data["createdAt"]).tzinfo is not None


async def test_registered_user_logs_in_with_its_role(client: Client, admin: Account) -> None:
    user = await register(client, admin, role="viewer")

    me = await client.get("/v1/users/me", headers=user.auth)

    assert me.status == 200, await me.text()
    data = await me.json()
    assert data["userId"] == user.user_id
    assert data["role"] == "viewer"
    assert data["tenantId"] == admin.tenant_id


@pytest.mark.parametrize("role", ["admin", "user", "viewer"])
async def test_register_stores_each_role(client: Client, admin: Account, role: str) -> None:
    resp = await client.post(
        "/v1/users/register", headers=admin.auth, json=register_body(admin, role=role)
    )
    assert resp.status == 201, await resp.text()

    stored = await read_user(client, admin, (await resp.json())["userId"])

    assert stored["role"] == role


async def test_register_trims_the_full_name(client: Client, admin: Account) -> None:
    resp = await client.post(
        "/v1/users/register", headers=admin.auth, json=register_body(admin, fullName="  Uma  ")
    )

    assert resp.status == 201, await resp.text()
    assert (await resp.json())["fullName"] == "Uma"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "abc"),
        ("username", "a" * 50),
        ("username", "a.b_c-d9"),
        ("fullName", "x" * 100),
        ("fullName", "Ünïcødé 名前"),
        ("password", "Aa1!aaaa"),
        ("password", "Aa1!" * 32),
    ],
)
async def test_register_accepts_values_at_the_limits(
    client: Client, admin: Account, field: str, value: str
) -> None:
    body = register_body(admin, **{field: value})

    resp = await client.post("/v1/users/register", headers=admin.auth, json=body)

    assert resp.status == 201, await resp.text()
    if field != "password":
        assert (await resp.json())[field] == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "ab"),
        ("username", "a" * 51),
        ("username", ""),
        ("username", "-abc"),
        ("username", ".abc"),
        ("username", "_abc"),
        ("username", "has space"),
        ("username", "bad@name"),
        ("username", "ñandu"),
        ("username", "abc\n"),
        ("username", 123),
        ("email", "not-an-email"),
        ("email", "u@"),
        ("email", "@acme.example"),
        ("email", "u@acme"),
        ("email", "a" * 64 + "@" + "b" * 40 + ".example"),
        ("email", ""),
        ("fullName", ""),
        ("fullName", "   "),
        ("fullName", "x" * 101),
        ("fullName", "Bad\x00Name"),
        ("fullName", "Tab\tName"),
        ("fullName", "Line\nBreak"),
        ("fullName", "Evil\u202eName"),
        ("fullName", None),
        ("password", "Ab1!efg"),
        ("password", "str0ng!passw0rd"),
        ("password", "STR0NG!PASSW0RD"),
        ("password", "Strong!Password"),
        ("password", "Str0ngPassw0rd"),
        ("password", "Aa1!" * 33),
        ("role", "superadmin"),
        ("role", "Admin"),
        ("role", "owner"),
        ("role", ""),
        ("role", None),
        ("tenantId", "not-a-uuid"),
        ("tenantId", 42),
        ("tenantId", None),
    ],
)
async def test_register_enforces_each_rule(
    client: Client, admin: Account, field: str, value: Any
) -> None:
    resp = await client.post(
        "/v1/users/register", headers=admin.auth, json=register_body(admin, **{field: value})
    )

    await expect_rejected(resp, field)
    assert await user_count(client, admin) == 1


@pytest.mark.parametrize("field", ["username", "password", "email", "fullName", "tenantId", "role"])
async def test_register_requires_each_field(client: Client, admin: Account, field: str) -> None:
    body = register_body(admin)
    del body[field]

    resp = await client.post("/v1/users/register", headers=admin.auth, json=body)

    await expect_rejected(resp, field)


@pytest.mark.parametrize("field", ["isActive", "userId", "passwordHash", "tenant"])
async def test_register_refuses_unknown_fields(client: Client, admin: Account, field: str) -> None:
    body = register_body(admin, **{field: "x"})

    resp = await client.post("/v1/users/register", headers=admin.auth, json=body)

    await expect_rejected(resp, field)


async def test_register_into_another_tenant_is_forbidden(client: Client, admin: Account) -> None:
    other = await signup(client)

    resp = await client.post(
        "/v1/users/register",
        headers=admin.auth,
        json=register_body(admin, tenantId=other.tenant_id),
    )

    await expect_error(resp, 403, "tenant_mismatch")
    assert await user_count(client, other) == 1
    assert await user_count(client, admin) == 1


@pytest.mark.parametrize("role", ["user", "viewer"])
async def test_register_by_a_non_admin_is_forbidden(
    client: Client, admin: Account, role: str
) -> None:
    caller = await register(client, admin, role=role)

    resp = await client.post(
        "/v1/users/register", headers=caller.auth, json=register_body(admin, role="user")
    )

    await expect_error(resp, 403, "forbidden")
    assert await user_count(client, admin) == 2


async def test_register_without_a_token_is_unauthorized(client: Client, admin: Account) -> None:
    resp = await client.post("/v1/users/register", json=register_body(admin))

    await expect_error(resp, 401, "missing_token")


@pytest.mark.parametrize(
    "transform", [str, str.upper, str.swapcase], ids=["same", "upper", "swapcase"]
)
async def test_register_refuses_a_taken_username(
    client: Client, admin: Account, transform: Callable[[str], str]
) -> None:
    first = register_body(admin, username=unique("Mixed"))
    assert (await client.post("/v1/users/register", headers=admin.auth, json=first)).status == 201

    resp = await client.post(
        "/v1/users/register",
        headers=admin.auth,
        json=register_body(admin, username=transform(first["username"])),
    )

    await expect_error(resp, 409, "username_taken")
    assert await user_count(client, admin) == 2


@pytest.mark.parametrize(
    "transform", [str, str.upper, str.swapcase], ids=["same", "upper", "swapcase"]
)
async def test_register_refuses_a_taken_email(
    client: Client, admin: Account, transform: Callable[[str], str]
) -> None:
    email = f"{unique('Mail.')}@{admin.domain}"
    first = register_body(admin, email=email)
    assert (await client.post("/v1/users/register", headers=admin.auth, json=first)).status == 201

    resp = await client.post(
        "/v1/users/register", headers=admin.auth, json=register_body(admin, email=transform(email))
    )

    await expect_error(resp, 409, "email_taken")
    assert await user_count(client, admin) == 2


async def test_register_refuses_the_admins_own_username(client: Client, admin: Account) -> None:
    resp = await client.post(
        "/v1/users/register",
        headers=admin.auth,
        json=register_body(admin, username=admin.username.upper()),
    )

    await expect_error(resp, 409, "username_taken")


async def test_same_username_and_email_in_another_tenant_are_fine(
    client: Client, admin: Account
) -> None:
    other = await signup(client)
    body = register_body(admin)
    assert (await client.post("/v1/users/register", headers=admin.auth, json=body)).status == 201

    resp = await client.post(
        "/v1/users/register",
        headers=other.auth,
        json={**body, "tenantId": other.tenant_id},
    )

    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["tenantId"] == other.tenant_id
    assert data["username"] == body["username"]


async def test_register_enforces_the_max_users_quota(client: Client) -> None:
    admin = await signup(client, configuration={"maxUsers": 2})
    await register(client, admin, log_in=False)

    resp = await client.post("/v1/users/register", headers=admin.auth, json=register_body(admin))

    await expect_error(resp, 403, "quota_exceeded")
    assert await user_count(client, admin) == 2


async def test_quota_of_one_tenant_does_not_limit_another(client: Client) -> None:
    full = await signup(client, configuration={"maxUsers": 1})
    roomy = await signup(client, configuration={"maxUsers": 2})
    refused = await client.post("/v1/users/register", headers=full.auth, json=register_body(full))
    await expect_error(refused, 403, "quota_exceeded")

    resp = await client.post("/v1/users/register", headers=roomy.auth, json=register_body(roomy))

    assert resp.status == 201, await resp.text()


async def test_concurrent_registrations_never_exceed_the_quota(client: Client) -> None:
    admin = await signup(client, configuration={"maxUsers": 3})

    responses = await asyncio.gather(
        *(
            client.post("/v1/users/register", headers=admin.auth, json=register_body(admin))
            for _ in range(5)
        )
    )

    statuses = sorted(r.status for r in responses)
    assert statuses == [201, 201, 403, 403, 403], statuses
    for resp in responses:
        if resp.status == 403:
            assert (await error_of(resp))["code"] == "quota_exceeded"
    assert await user_count(client, admin) == 3


# --- GET /v1/users/{id}, /v1/users/me ------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "user", "viewer"])
async def test_any_member_reads_a_user_of_its_tenant(
    client: Client, admin: Account, role: str
) -> None:
    reader = await register(client, admin, role=role)
    target = await register(client, admin, role="user", log_in=False)

    data = await read_user(client, reader, target.user_id)

    assert set(data) == USER_FIELDS
    assert data["userId"] == target.user_id
    assert data["username"] == target.username
    assert data["tenantId"] == admin.tenant_id
    assert data["role"] == "user"


async def test_reading_a_user_of_another_tenant_is_not_found(
    client: Client, admin: Account
) -> None:
    other = await signup(client)
    stranger = await register(client, other, log_in=False)

    for user_id in (other.user_id, stranger.user_id):
        resp = await client.get(f"/v1/users/{user_id}", headers=admin.auth)
        await expect_error(resp, 404, "not_found")


@pytest.mark.parametrize("user_ref", ["not-a-uuid", "42", "me2", str(uuid.uuid4())])
async def test_reading_a_malformed_or_unknown_user_id_is_not_found(
    client: Client, admin: Account, user_ref: str
) -> None:
    resp = await client.get(f"/v1/users/{user_ref}", headers=admin.auth)

    await expect_error(resp, 404, "not_found")


@pytest.mark.parametrize("role", ["admin", "user", "viewer"])
async def test_me_is_the_caller(client: Client, admin: Account, role: str) -> None:
    caller = await register(client, admin, role=role)

    resp = await client.get("/v1/users/me", headers=caller.auth)

    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert set(data) == USER_FIELDS
    assert data["userId"] == caller.user_id
    assert data["username"] == caller.username
    assert data["role"] == role
    assert data["tenantId"] == admin.tenant_id
    assert data["lastLogin"] is not None


async def test_me_without_a_token_is_unauthorized(client: Client) -> None:
    resp = await client.get("/v1/users/me")

    await expect_error(resp, 401, "missing_token")


# --- GET /v1/users ---------------------------------------------------------------------------


async def test_list_pages_through_every_user_oldest_first(client: Client, admin: Account) -> None:
    created = [admin.user_id]
    for _ in range(4):
        created.append((await register(client, admin, log_in=False)).user_id)

    pages = []
    for page in (1, 2, 3, 4):
        resp = await client.get(f"/v1/users?page={page}&limit=2", headers=admin.auth)
        assert resp.status == 200, await resp.text()
        pages.append(await resp.json())

    assert [len(p["users"]) for p in pages] == [2, 2, 1, 0]
    for number, page_body in enumerate(pages, start=1):
        assert page_body["page"] == number
        assert page_body["limit"] == 2
        assert page_body["totalCount"] == 5
        assert page_body["totalPages"] == 3
    listed = [u["userId"] for p in pages for u in p["users"]]
    assert listed == created
    assert all(set(u) == USER_FIELDS for p in pages for u in p["users"])


async def test_list_defaults_to_first_page_of_twenty(client: Client, admin: Account) -> None:
    await register(client, admin, log_in=False)

    resp = await client.get("/v1/users", headers=admin.auth)

    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert (data["page"], data["limit"], data["totalCount"], data["totalPages"]) == (1, 20, 2, 1)
    assert len(data["users"]) == 2


async def test_list_accepts_the_largest_limit(client: Client, admin: Account) -> None:
    resp = await client.get("/v1/users?limit=100", headers=admin.auth)

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["limit"] == 100


async def test_list_shows_only_the_callers_tenant(client: Client, admin: Account) -> None:
    other = await signup(client)
    stranger = await register(client, other, log_in=False)

    resp = await client.get("/v1/users?limit=100", headers=admin.auth)

    data = await resp.json()
    assert data["totalCount"] == 1
    ids = {u["userId"] for u in data["users"]}
    assert ids == {admin.user_id}
    assert stranger.user_id not in ids


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("page=1&page=2", "page"),
        ("sort=name", "sort"),
    ],
)
async def test_list_refuses_invalid_query_parameters(
    client: Client, admin: Account, query: str, param: str
) -> None:
    resp = await client.get(f"/v1/users?{query}", headers=admin.auth)

    error = await expect_error(resp, 400, "invalid_query")
    assert any(d["field"] == param for d in error["details"]), error["details"]


@pytest.mark.parametrize("role", ["user", "viewer"])
async def test_list_by_a_non_admin_is_forbidden(client: Client, admin: Account, role: str) -> None:
    caller = await register(client, admin, role=role)

    resp = await client.get("/v1/users", headers=caller.auth)

    await expect_error(resp, 403, "forbidden")


async def test_list_without_a_token_is_unauthorized(client: Client) -> None:
    resp = await client.get("/v1/users")

    await expect_error(resp, 401, "missing_token")


async def test_list_checks_the_token_before_the_query(client: Client) -> None:
    # An anonymous caller learns nothing about the endpoint's parameters.
    resp = await client.get("/v1/users?page=0")

    await expect_error(resp, 401, "missing_token")


# --- PATCH /v1/users/{id} ------------------------------------------------------------------------


async def patch(client: Client, caller: Account, user_id: str, body: dict[str, Any]) -> Any:
    return await client.patch(f"/v1/users/{user_id}", headers=caller.auth, json=body)


@pytest.mark.parametrize("role", ["admin", "user", "viewer"])
async def test_self_changes_full_name(client: Client, admin: Account, role: str) -> None:
    user = await register(client, admin, role=role)

    resp = await patch(client, user, user.user_id, {"fullName": "Renamed Person"})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["fullName"] == "Renamed Person"
    assert (await read_user(client, admin, user.user_id))["fullName"] == "Renamed Person"


@pytest.mark.parametrize("current", [None, "Wr0ng!Password", ""], ids=["missing", "wrong", "empty"])
async def test_self_password_change_needs_the_current_password(
    client: Client, admin: Account, current: str | None
) -> None:
    user = await register(client, admin)
    body: dict[str, Any] = {"password": NEW_PASSWORD}
    if current is not None:
        body["currentPassword"] = current

    resp = await patch(client, user, user.user_id, body)

    await expect_error(resp, 403, "invalid_current_password")
    assert await login_status(client, user, PASSWORD) == 200
    assert await login_status(client, user, NEW_PASSWORD) == 401


async def test_self_password_change_switches_the_password(client: Client, admin: Account) -> None:
    user = await register(client, admin)

    resp = await patch(
        client, user, user.user_id, {"password": NEW_PASSWORD, "currentPassword": PASSWORD}
    )

    assert resp.status == 200, await resp.text()
    assert await login_status(client, user, NEW_PASSWORD) == 200
    assert await login_status(client, user, PASSWORD) == 401


async def test_self_password_change_revokes_only_the_other_sessions(
    client: Client, admin: Account
) -> None:
    user = await register(client, admin)
    other = await second_session(client, user)

    resp = await patch(
        client, user, user.user_id, {"password": NEW_PASSWORD, "currentPassword": PASSWORD}
    )
    assert resp.status == 200, await resp.text()

    assert (await client.get("/v1/users/me", headers=user.auth)).status == 200
    await expect_error(await client.get("/v1/users/me", headers=other.auth), 401, "session_revoked")
    refresh = await client.post(
        "/v1/auth/refresh",
        json={"refreshToken": other.refresh_token, "userId": other.user_id},
    )
    assert refresh.status == 401, await refresh.text()
    kept = await client.post(
        "/v1/auth/refresh", json={"refreshToken": user.refresh_token, "userId": user.user_id}
    )
    assert kept.status == 200, await kept.text()


async def test_password_change_leaves_other_users_sessions_alone(
    client: Client, admin: Account
) -> None:
    user = await register(client, admin)
    bystander = await register(client, admin)

    resp = await patch(
        client, user, user.user_id, {"password": NEW_PASSWORD, "currentPassword": PASSWORD}
    )
    assert resp.status == 200, await resp.text()

    assert (await client.get("/v1/users/me", headers=bystander.auth)).status == 200
    assert (await client.get("/v1/users/me", headers=admin.auth)).status == 200


@pytest.mark.parametrize("current", [None, "Wr0ng!Password"], ids=["missing", "wrong"])
async def test_self_email_change_needs_the_current_password(
    client: Client, admin: Account, current: str | None
) -> None:
    user = await register(client, admin)
    body: dict[str, Any] = {"email": f"{unique('new')}@{admin.domain}"}
    if current is not None:
        body["currentPassword"] = current
    before = await read_user(client, admin, user.user_id)

    resp = await patch(client, user, user.user_id, body)

    await expect_error(resp, 403, "invalid_current_password")
    assert (await read_user(client, admin, user.user_id))["email"] == before["email"]


async def test_self_email_change_with_the_current_password(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    email = f"{unique('new')}@{admin.domain}"

    resp = await patch(client, user, user.user_id, {"email": email, "currentPassword": PASSWORD})

    assert resp.status == 200, await resp.text()
    assert (await read_user(client, admin, user.user_id))["email"] == email


@pytest.mark.parametrize("role", ["user", "viewer"])
@pytest.mark.parametrize(
    "change",
    [{"role": "admin"}, {"isActive": False}, {"role": "admin", "fullName": "Sneaky"}],
    ids=["role", "isActive", "role+name"],
)
async def test_a_non_admin_cannot_change_own_role_or_active_flag(
    client: Client, admin: Account, role: str, change: dict[str, Any]
) -> None:
    user = await register(client, admin, role=role)
    before = await read_user(client, admin, user.user_id)

    resp = await patch(client, user, user.user_id, change)

    await expect_error(resp, 403, "forbidden")
    assert await read_user(client, admin, user.user_id) == before


@pytest.mark.parametrize("role", ["user", "viewer"])
@pytest.mark.parametrize(
    "change",
    [
        {"fullName": "Hijacked"},
        {"email": "hijack@elsewhere.example"},
        {"role": "viewer"},
        {"isActive": False},
        {"password": NEW_PASSWORD, "currentPassword": PASSWORD},
    ],
    ids=["fullName", "email", "role", "isActive", "password"],
)
async def test_a_non_admin_cannot_change_another_user(
    client: Client, admin: Account, role: str, change: dict[str, Any]
) -> None:
    caller = await register(client, admin, role=role)
    target = await register(client, admin)
    before = await read_user(client, admin, target.user_id)

    resp = await patch(client, caller, target.user_id, change)

    await expect_error(resp, 403, "forbidden")
    assert await read_user(client, admin, target.user_id) == before
    assert (await client.get("/v1/users/me", headers=target.auth)).status == 200


@pytest.mark.parametrize("new_role", ["admin", "viewer"])
async def test_admin_changes_another_users_role(
    client: Client, admin: Account, new_role: str
) -> None:
    user = await register(client, admin)

    resp = await patch(client, admin, user.user_id, {"role": new_role})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["role"] == new_role
    me = await client.get("/v1/users/me", headers=user.auth)
    assert (await me.json())["role"] == new_role


async def test_a_promotion_takes_effect_on_the_existing_token(
    client: Client, admin: Account
) -> None:
    user = await register(client, admin)
    assert (await client.get("/v1/users", headers=user.auth)).status == 403

    resp = await patch(client, admin, user.user_id, {"role": "admin"})
    assert resp.status == 200, await resp.text()

    assert (await client.get("/v1/users", headers=user.auth)).status == 200


async def test_a_demotion_takes_effect_on_the_existing_token(
    client: Client, admin: Account
) -> None:
    colleague = await register(client, admin, role="admin")
    assert (await client.get("/v1/users", headers=colleague.auth)).status == 200

    resp = await patch(client, admin, colleague.user_id, {"role": "viewer"})
    assert resp.status == 200, await resp.text()

    assert (await client.get("/v1/users", headers=colleague.auth)).status == 403


async def test_admin_changes_another_users_name_and_email_without_a_password(
    client: Client, admin: Account
) -> None:
    user = await register(client, admin)
    email = f"{unique('moved')}@{admin.domain}"

    resp = await patch(client, admin, user.user_id, {"fullName": "New Name", "email": email})

    assert resp.status == 200, await resp.text()
    stored = await read_user(client, admin, user.user_id)
    assert (stored["fullName"], stored["email"]) == ("New Name", email)


async def test_admin_cannot_set_another_users_password(client: Client, admin: Account) -> None:
    user = await register(client, admin)

    resp = await patch(
        client, admin, user.user_id, {"password": NEW_PASSWORD, "currentPassword": PASSWORD}
    )

    await expect_error(resp, 403, "forbidden")
    assert await login_status(client, user, PASSWORD) == 200
    assert await login_status(client, user, NEW_PASSWORD) == 401


async def test_deactivation_ends_the_users_access_at_once(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    other = await second_session(client, user)
    assert (await client.get("/v1/users/me", headers=user.auth)).status == 200

    resp = await patch(client, admin, user.user_id, {"isActive": False})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["isActive"] is False
    for session in (user, other):
        await expect_error(
            await client.get("/v1/users/me", headers=session.auth), 401, "session_revoked"
        )
    refresh = await client.post(
        "/v1/auth/refresh", json={"refreshToken": user.refresh_token, "userId": user.user_id}
    )
    assert refresh.status == 401, await refresh.text()
    assert await login_status(client, user, PASSWORD) == 401


async def test_reactivated_user_can_log_in_again(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    assert (await patch(client, admin, user.user_id, {"isActive": False})).status == 200

    resp = await patch(client, admin, user.user_id, {"isActive": True})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["isActive"] is True
    assert await login_status(client, user, PASSWORD) == 200


@pytest.mark.parametrize(
    "change",
    [{"role": "user"}, {"role": "admin"}, {"isActive": False}, {"isActive": True}],
    ids=["demote", "same-role", "deactivate", "same-active"],
)
async def test_admin_cannot_change_own_role_or_active_flag(
    client: Client, admin: Account, change: dict[str, Any]
) -> None:
    before = await read_user(client, admin, admin.user_id)

    resp = await patch(client, admin, admin.user_id, change)

    await expect_error(resp, 403, "self_change")
    assert await read_user(client, admin, admin.user_id) == before


@pytest.mark.parametrize(
    "body",
    [{}, {"currentPassword": PASSWORD}, {"fullName": None}, {"role": None, "isActive": None}],
    ids=["empty", "only-current-password", "null-name", "nulls"],
)
async def test_patch_without_a_change_is_refused(
    client: Client, admin: Account, body: dict[str, Any]
) -> None:
    user = await register(client, admin, log_in=False)

    resp = await patch(client, admin, user.user_id, body)

    assert resp.status == 422, await resp.text()
    assert (await error_of(resp))["code"] == "validation_failed"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fullName", ""),
        ("fullName", "x" * 101),
        ("fullName", "Bad\x07Bell"),
        ("email", "nope"),
        ("role", "root"),
        ("isActive", "false"),
        ("isActive", 0),
        ("password", "weakpassword"),
        ("username", "renamed"),
        ("tenantId", str(uuid.uuid4())),
    ],
)
async def test_patch_enforces_field_rules(
    client: Client, admin: Account, field: str, value: Any
) -> None:
    user = await register(client, admin, log_in=False)
    before = await read_user(client, admin, user.user_id)

    resp = await patch(client, admin, user.user_id, {field: value})

    await expect_rejected(resp, field)
    assert await read_user(client, admin, user.user_id) == before


async def test_patch_to_a_taken_email_conflicts(client: Client, admin: Account) -> None:
    user = await register(client, admin, log_in=False)
    taken = f"{admin.username}@{admin.domain}".upper()

    resp = await patch(client, admin, user.user_id, {"email": taken})

    await expect_error(resp, 409, "email_taken")
    assert (await read_user(client, admin, user.user_id))["email"] != taken


async def test_self_patch_to_a_taken_email_conflicts(client: Client, admin: Account) -> None:
    user = await register(client, admin)

    resp = await patch(
        client,
        user,
        user.user_id,
        {"email": f"{admin.username}@{admin.domain}", "currentPassword": PASSWORD},
    )

    await expect_error(resp, 409, "email_taken")


async def test_email_of_another_tenant_is_not_taken(client: Client, admin: Account) -> None:
    other = await signup(client)
    user = await register(client, admin, log_in=False)
    email = f"{other.username}@{other.domain}"

    resp = await patch(client, admin, user.user_id, {"email": email})

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["email"] == email


async def test_patch_of_another_tenants_user_is_not_found_and_changes_nothing(
    client: Client, admin: Account
) -> None:
    other = await signup(client)
    target = await register(client, other)
    before = await read_user(client, other, target.user_id)

    resp = await patch(
        client, admin, target.user_id, {"fullName": "Pwned", "role": "admin", "isActive": False}
    )

    await expect_error(resp, 404, "not_found")
    assert await read_user(client, other, target.user_id) == before
    assert (await client.get("/v1/users/me", headers=target.auth)).status == 200


@pytest.mark.parametrize("user_ref", ["not-a-uuid", str(uuid.uuid4())])
async def test_patch_of_a_malformed_or_unknown_id_is_not_found(
    client: Client, admin: Account, user_ref: str
) -> None:
    resp = await patch(client, admin, user_ref, {"fullName": "Nobody"})

    await expect_error(resp, 404, "not_found")


async def test_patch_without_a_token_is_unauthorized(client: Client, admin: Account) -> None:
    resp = await client.patch(f"/v1/users/{admin.user_id}", json={"fullName": "Anon"})

    await expect_error(resp, 401, "missing_token")
    assert (await read_user(client, admin, admin.user_id))["fullName"] == "Ada Admin"


async def test_a_user_made_viewer_can_no_longer_change_what_they_own(
    client: Client, admin: Account
) -> None:
    """Viewers read; a POC or a dojo its owner made before being made viewer stays theirs,
    but only to read (they could not create it now either)."""
    owner = await register(client, admin)
    poc_id = await create_poc(client, owner)
    dojo = await create_dojo(client, owner)
    resp = await client.patch(
        f"/v1/users/{owner.user_id}", headers=admin.auth, json={"role": "viewer"}
    )
    assert resp.status == 200, await resp.text()
    attempts = [
        ("PUT", f"/v1/pocs/{poc_id}", {"description": "changed"}),
        ("DELETE", f"/v1/pocs/{poc_id}", None),
        ("POST", f"/v1/dojos/sessions/{dojo.session_id}/start", None),
        ("POST", f"/v1/dojos/sessions/{dojo.session_id}/end", None),
    ]
    for method, path, body in attempts:
        resp = await client.request(method, path, headers=owner.auth, json=body)
        assert resp.status == 403, (method, path, await resp.text())
        assert (await error_of(resp))["code"] == "forbidden"
    poc = await client.get(f"/v1/pocs/{poc_id}", headers=owner.auth)
    assert poc.status == 200
    assert (await poc.json())["description"] != "changed"
    session = await client.get(f"/v1/dojos/sessions/{dojo.session_id}", headers=owner.auth)
    assert (await session.json())["status"] == "created"
