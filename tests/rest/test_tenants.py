"""POST /v1/tenants (signup) and GET /v1/tenants/{id}."""

from __future__ import annotations

import copy
import ipaddress
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import PASSWORD, Account, error_of, register, signup, unique
from tests.jobs.job_helpers import wait_status
from tests.poc_helpers import create_poc, delete_poc

Client: TypeAlias = TestClient[Any, Any]
MakeClient: TypeAlias = Callable[..., Awaitable[Client]]

ALL_FEATURES = {"dojos", "voice", "recording", "reports", "videos", "search", "notifications"}

# The contract's plan caps: (maxUsers, maxPocs).
PLAN_CAPS = {
    "standard": (50, 5_000),
    "premium": (500, 100_000),
    "enterprise": (100_000, 10_000_000),
}


def signup_body(**overrides: Any) -> dict[str, Any]:
    """A valid signup body with a fresh domain and admin username."""
    domain = f"{unique('d')}.example"
    username = unique("admin")
    body: dict[str, Any] = {
        "name": "Acme Labs",
        "domain": domain,
        "contactEmail": f"ops@{domain}",
        "plan": "standard",
        "admin": {
            "username": username,
            "email": f"{username}@{domain}",
            "fullName": "Ada Admin",
            "password": PASSWORD,
        },
    }
    body.update(overrides)
    return body


def with_value(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with the dotted ``path`` set to ``value``."""
    result = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return result


def without(body: dict[str, Any], path: str) -> dict[str, Any]:
    """A copy of ``body`` without the dotted ``path``."""
    result = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node[key]
    del node[last]
    return result


async def assert_rejected(resp: Any, field: str) -> dict[str, Any]:
    """Assert a 422 whose details name ``field``; returns the matching detail."""
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    matching = [d for d in error["details"] if d["field"] == field]
    assert matching, error["details"]
    detail: dict[str, Any] = matching[0]
    return detail


def unique_ip() -> str:
    """An address no other test sends from."""
    return str(ipaddress.IPv6Address(uuid.uuid4().int))


# --- signup: success ---------------------------------------------------------------------------


async def test_signup_creates_active_tenant_and_admin(client: Client) -> None:
    body = signup_body()

    resp = await client.post("/v1/tenants", json=body)

    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert set(data) == {
        "tenantId",
        "name",
        "domain",
        "plan",
        "status",
        "configuration",
        "admin",
        "createdAt",
    }
    assert str(uuid.UUID(data["tenantId"])) == data["tenantId"]
    assert data["name"] == body["name"]
    assert data["domain"] == body["domain"]
    assert data["status"] == "active"
    assert data["plan"] == "standard"
    assert datetime.fromisoformat(data["createdAt"]).tzinfo is not None
    assert data["configuration"]["maxUsers"] == 50
    assert data["configuration"]["maxPocs"] == 5_000
    assert set(data["configuration"]["features"]) == ALL_FEATURES
    assert data["admin"]["username"] == body["admin"]["username"]
    uuid.UUID(data["admin"]["userId"])


async def test_signup_admin_can_log_in_as_admin_of_the_new_tenant(client: Client) -> None:
    body = signup_body()
    resp = await client.post("/v1/tenants", json=body)
    assert resp.status == 201, await resp.text()
    created = await resp.json()

    login = await client.post(
        "/v1/auth/login",
        json={
            "username": body["admin"]["username"],
            "password": PASSWORD,
            "tenantId": body["domain"],
        },
    )

    assert login.status == 200, await login.text()
    session = await login.json()
    assert session["userId"] == created["admin"]["userId"]
    assert session["tenantId"] == created["tenantId"]
    assert session["role"] == "admin"


@pytest.mark.parametrize("plan", sorted(PLAN_CAPS))
async def test_signup_configuration_defaults_follow_the_plan(client: Client, plan: str) -> None:
    resp = await client.post("/v1/tenants", json=signup_body(plan=plan))

    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["plan"] == plan
    assert (data["configuration"]["maxUsers"], data["configuration"]["maxPocs"]) == PLAN_CAPS[plan]
    assert set(data["configuration"]["features"]) == ALL_FEATURES


async def test_signup_keeps_a_requested_configuration_below_the_cap(client: Client) -> None:
    config = {"maxUsers": 7, "maxPocs": 3, "features": ["voice", "dojos", "voice"]}

    resp = await client.post("/v1/tenants", json=signup_body(configuration=config))

    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["configuration"] == {"maxUsers": 7, "maxPocs": 3, "features": ["dojos", "voice"]}


async def test_signup_with_an_empty_feature_list_enables_no_features(client: Client) -> None:
    resp = await client.post("/v1/tenants", json=signup_body(configuration={"features": []}))

    assert resp.status == 201, await resp.text()
    data = await resp.json()
    assert data["configuration"]["features"] == []


@pytest.mark.parametrize(
    ("plan", "key", "index"),
    [
        ("standard", "maxUsers", 0),
        ("standard", "maxPocs", 1),
        ("premium", "maxUsers", 0),
        ("enterprise", "maxPocs", 1),
    ],
)
async def test_signup_accepts_configuration_exactly_at_the_plan_cap(
    client: Client, plan: str, key: str, index: int
) -> None:
    cap = PLAN_CAPS[plan][index]

    resp = await client.post("/v1/tenants", json=signup_body(plan=plan, configuration={key: cap}))

    assert resp.status == 201, await resp.text()
    assert (await resp.json())["configuration"][key] == cap


@pytest.mark.parametrize(
    ("plan", "key", "index"),
    [
        ("standard", "maxUsers", 0),
        ("standard", "maxPocs", 1),
        ("premium", "maxUsers", 0),
        ("premium", "maxPocs", 1),
        ("enterprise", "maxUsers", 0),
        ("enterprise", "maxPocs", 1),
    ],
)
async def test_signup_refuses_configuration_above_the_plan_cap(
    client: Client, plan: str, key: str, index: int
) -> None:
    body = signup_body(plan=plan, configuration={key: PLAN_CAPS[plan][index] + 1})

    resp = await client.post("/v1/tenants", json=body)

    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    assert any(key in d["message"] for d in error["details"]), error["details"]
    # Nothing was created: the domain is still free.
    retry = await client.post("/v1/tenants", json=without(body, "configuration"))
    assert retry.status == 201, await retry.text()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"maxUsers": 0}, "configuration.maxUsers"),
        ({"maxPocs": 0}, "configuration.maxPocs"),
        ({"maxUsers": -1}, "configuration.maxUsers"),
        ({"features": ["dojos", "teleport"]}, "configuration.features.1"),
    ],
)
async def test_signup_refuses_invalid_configuration_values(
    client: Client, config: dict[str, Any], field: str
) -> None:
    resp = await client.post("/v1/tenants", json=signup_body(configuration=config))

    await assert_rejected(resp, field)


# --- signup: validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "name",
        "domain",
        "contactEmail",
        "plan",
        "admin",
        "admin.username",
        "admin.email",
        "admin.fullName",
        "admin.password",
    ],
)
async def test_signup_missing_required_field_is_named(client: Client, path: str) -> None:
    resp = await client.post("/v1/tenants", json=without(signup_body(), path))

    detail = await assert_rejected(resp, path)
    assert detail["type"] == "missing"


@pytest.mark.parametrize("plan", ["free", "Standard", "", "gold"])
async def test_signup_refuses_unknown_plan(client: Client, plan: str) -> None:
    resp = await client.post("/v1/tenants", json=signup_body(plan=plan))

    await assert_rejected(resp, "plan")


@pytest.mark.parametrize(
    "domain",
    [
        "localhost",
        "acme",
        "under_score.example",
        "-lead.example",
        "trail-.example",
        "a..b.example",
        "acme.example.",
        "acme.c",
        "acme.123",
        "ac me.example",
        "acme.example/path",
        "https://acme.example",
        "x.y",
        "a" * 50 + "." + "b" * 50 + ".example",
    ],
)
async def test_signup_refuses_invalid_domain(client: Client, domain: str) -> None:
    resp = await client.post("/v1/tenants", json=signup_body(domain=domain))

    await assert_rejected(resp, "domain")


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "ops@",
        "@acme.example",
        "ops@@acme.example",
        "ops@acme",
        "ops acme@acme.example",
        "a" * 64 + "@" + "b" * 40 + ".example",
    ],
)
async def test_signup_refuses_invalid_contact_email(client: Client, email: str) -> None:
    resp = await client.post("/v1/tenants", json=signup_body(contactEmail=email))

    await assert_rejected(resp, "contactEmail")


@pytest.mark.parametrize(
    ("password", "complaint"),
    [
        ("Ab1!efg", "at least 8"),
        ("str0ng!passw0rd", "uppercase"),
        ("STR0NG!PASSW0RD", "lowercase"),
        ("Strong!Password", "number"),
        ("Str0ngPassw0rd", "special"),
        ("Str0ng Passw0rd", "special"),
        ("Aa1!" * 33, "at most 128"),
    ],
)
async def test_signup_refuses_weak_admin_password(
    client: Client, password: str, complaint: str
) -> None:
    body = with_value(signup_body(), "admin.password", password)

    resp = await client.post("/v1/tenants", json=body)

    detail = await assert_rejected(resp, "admin.password")
    assert complaint in detail["message"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("plan", 5),
        ("name", 123),
        ("domain", ["acme.example"]),
        ("contactEmail", None),
        ("configuration.maxUsers", "10"),
        ("configuration.maxPocs", 10.5),
        ("configuration.maxUsers", True),
        ("configuration.features", "dojos"),
        ("admin.username", 42),
        ("admin.password", None),
    ],
)
async def test_signup_refuses_wrong_types_strictly(client: Client, path: str, value: Any) -> None:
    resp = await client.post("/v1/tenants", json=with_value(signup_body(), path, value))

    await assert_rejected(resp, path)


@pytest.mark.parametrize(("path", "value"), [("admin", "ada"), ("configuration", [])])
async def test_signup_refuses_a_nested_object_of_the_wrong_type_as_a_rule_breach(
    client: Client, path: str, value: Any
) -> None:
    # The body is a JSON object; only one field has the wrong type, so this is a 422 naming
    # the field, not a 400 claiming the body is not an object.
    resp = await client.post("/v1/tenants", json=with_value(signup_body(), path, value))

    await assert_rejected(resp, path)


@pytest.mark.parametrize(
    "path",
    ["status", "tenantId", "billing", "admin.role", "admin.isActive", "configuration.storage"],
)
async def test_signup_refuses_unknown_fields(client: Client, path: str) -> None:
    resp = await client.post("/v1/tenants", json=with_value(signup_body(), path, "x"))

    detail = await assert_rejected(resp, path)
    assert detail["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    "transform",
    [str, str.upper, str.title, lambda d: f"  {d}  "],
    ids=["same", "upper", "title", "padded"],
)
async def test_signup_refuses_a_taken_domain(
    client: Client, transform: Callable[[str], str]
) -> None:
    first = signup_body()
    assert (await client.post("/v1/tenants", json=first)).status == 201

    resp = await client.post("/v1/tenants", json=signup_body(domain=transform(first["domain"])))

    assert resp.status == 409, await resp.text()
    assert (await error_of(resp))["code"] == "domain_taken"


async def test_signup_stores_domain_in_lower_case(client: Client) -> None:
    domain = f"{unique('D')}.Example".upper()

    resp = await client.post("/v1/tenants", json=signup_body(domain=domain))

    assert resp.status == 201, await resp.text()
    assert (await resp.json())["domain"] == domain.lower()


@pytest.mark.parametrize(
    "name",
    ["Société Générale — Ωmega", "東京ラボ株式会社", "Café ☕ 🚀", "Cafe\u0301 decomposed"],
)
async def test_signup_keeps_a_unicode_name_intact(client: Client, name: str) -> None:
    account = await signup(client, name=name)

    resp = await client.get(f"/v1/tenants/{account.tenant_id}", headers=account.auth)

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["name"] == name


async def test_signup_returns_the_unicode_name_in_the_creation_response(client: Client) -> None:
    name = "Zürich Ärzte AG — 北京"

    resp = await client.post("/v1/tenants", json=signup_body(name=name))

    assert resp.status == 201, await resp.text()
    assert (await resp.json())["name"] == name


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "Acme\x00Labs", "Acme\nLabs"])
async def test_signup_refuses_an_invalid_name(client: Client, name: str) -> None:
    resp = await client.post("/v1/tenants", json=signup_body(name=name))

    await assert_rejected(resp, "name")


async def test_signup_is_rate_limited_per_client_ip(make_client: MakeClient) -> None:
    client = await make_client(signup_limit_ip=2)
    ip = {"X-Forwarded-For": unique_ip()}
    for _ in range(2):
        ok = await client.post("/v1/tenants", json=signup_body(), headers=ip)
        assert ok.status == 201, await ok.text()

    limited = await client.post("/v1/tenants", json=signup_body(), headers=ip)

    assert limited.status == 429, await limited.text()
    assert (await error_of(limited))["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    other = await client.post(
        "/v1/tenants", json=signup_body(), headers={"X-Forwarded-For": unique_ip()}
    )
    assert other.status == 201, await other.text()


async def test_rate_limited_signup_creates_nothing(make_client: MakeClient) -> None:
    client = await make_client(signup_limit_ip=1)
    ip = {"X-Forwarded-For": unique_ip()}
    assert (await client.post("/v1/tenants", json=signup_body(), headers=ip)).status == 201
    body = signup_body()

    assert (await client.post("/v1/tenants", json=body, headers=ip)).status == 429

    retry = await client.post("/v1/tenants", json=body, headers={"X-Forwarded-For": unique_ip()})
    assert retry.status == 201, await retry.text()


# --- GET /v1/tenants/{id} ------------------------------------------------------------------------


async def test_get_own_tenant(client: Client, admin: Account) -> None:
    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=admin.auth)

    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["tenantId"] == admin.tenant_id
    assert data["domain"] == admin.domain
    assert data["contactEmail"] == f"ops@{admin.domain}"
    assert data["plan"] == "standard"
    assert data["status"] == "active"
    assert data["configuration"]["maxUsers"] == 50
    assert data["usage"] == {"userCount": 1, "pocCount": 0, "storageUsed": 0}
    assert datetime.fromisoformat(data["updatedAt"]) >= datetime.fromisoformat(data["createdAt"])


async def test_get_tenant_counts_its_users(client: Client, admin: Account) -> None:
    for role in ("user", "viewer", "admin"):
        await register(client, admin, role=role, log_in=False)

    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=admin.auth)

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["usage"]["userCount"] == 4


async def test_get_tenant_user_count_ignores_other_tenants(client: Client, admin: Account) -> None:
    other = await signup(client)
    await register(client, other, log_in=False)
    await register(client, other, log_in=False)

    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=admin.auth)

    assert (await resp.json())["usage"]["userCount"] == 1


@pytest.mark.timeout(60)
async def test_get_tenant_counts_its_live_pocs_and_the_bytes_of_its_reports(
    make_client: MakeClient,
) -> None:
    client = await make_client(worker=True)
    admin, other = await signup(client), await signup(client)
    member = await register(client, admin)
    for owner in (admin, admin, member):
        await create_poc(client, owner)
    gone = await create_poc(client, admin)
    await delete_poc(client, admin, gone["pocId"])
    await create_poc(client, other)
    today = str(datetime.now(UTC).date())
    resp = await client.post(
        "/v1/reports/generate",
        headers=admin.auth,
        json={
            "reportType": "detailed",
            "dateRange": {"startDate": today, "endDate": today},
            "tenantId": admin.tenant_id,
            "format": "csv",
        },
    )
    assert resp.status == 202, await resp.text()
    report = await wait_status(
        client, admin, f"/v1/reports/{(await resp.json())['reportId']}/status"
    )
    assert report["status"] == "completed", report
    assert report["sizeBytes"] > 0

    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=member.auth)

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["usage"] == {
        "userCount": 2,
        "pocCount": 3,
        "storageUsed": report["sizeBytes"],
    }
    resp = await client.get(f"/v1/tenants/{other.tenant_id}", headers=other.auth)
    assert (await resp.json())["usage"] == {"userCount": 1, "pocCount": 1, "storageUsed": 0}


@pytest.mark.parametrize("role", ["user", "viewer"])
async def test_any_member_reads_own_tenant(client: Client, admin: Account, role: str) -> None:
    member = await register(client, admin, role=role)

    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=member.auth)

    assert resp.status == 200, await resp.text()
    assert (await resp.json())["tenantId"] == admin.tenant_id


async def test_get_another_tenant_is_not_found(client: Client, admin: Account) -> None:
    other = await signup(client)

    resp = await client.get(f"/v1/tenants/{other.tenant_id}", headers=admin.auth)

    assert resp.status == 404, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "not_found"
    assert other.domain not in await resp.text()


@pytest.mark.parametrize(
    "tenant_ref",
    ["not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000g", "null", str(uuid.uuid4())],
)
async def test_get_tenant_with_a_malformed_or_unknown_id_is_not_found(
    client: Client, admin: Account, tenant_ref: str
) -> None:
    resp = await client.get(f"/v1/tenants/{tenant_ref}", headers=admin.auth)

    assert resp.status == 404, await resp.text()
    assert (await error_of(resp))["code"] == "not_found"


async def test_get_tenant_by_domain_is_not_found(client: Client, admin: Account) -> None:
    resp = await client.get(f"/v1/tenants/{admin.domain}", headers=admin.auth)

    assert resp.status == 404, await resp.text()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "garbage", "basic"],
)
async def test_get_tenant_without_a_valid_token_is_unauthorized(
    client: Client, admin: Account, headers: dict[str, str]
) -> None:
    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=headers)

    assert resp.status == 401, await resp.text()
    await error_of(resp)
    assert resp.headers["WWW-Authenticate"] == "Bearer"
