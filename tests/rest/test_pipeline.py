"""The request pipeline and operational endpoints: error shape and status of every failure,
request ids, JSON access logs, audit rows, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from pocdojo.app import create_app
from pocdojo.core import appkeys
from pocdojo.core.logging import configure_logging
from pocdojo.core.settings import Settings
from tests.conftest import AiohttpClient, AppServer, Engines
from tests.helpers import PASSWORD, Account, error_of, register, signup, unique

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]

JSON = {"Content-Type": "application/json"}
HEX32 = re.compile(r"[0-9a-f]{32}")
UNREACHABLE_REDIS = SecretStr("redis://127.0.0.1:1/0")


async def owner_fetch(engines: Engines, query: str, *args: Any) -> list[Any]:
    """Rows read as the database owner, which row-level security does not bind."""
    conn = await asyncpg.connect(engines.database_url)
    try:
        rows: list[Any] = await conn.fetch(query, *args)
    finally:
        await conn.close()
    return rows


def login_body(admin: Account, **fields: Any) -> dict[str, Any]:
    return {
        "username": admin.username,
        "password": admin.password,
        "tenantId": admin.tenant_id,
        **fields,
    }


def register_body(admin: Account, **fields: Any) -> dict[str, Any]:
    username = fields.pop("username", unique("u"))
    return {
        "username": username,
        "password": PASSWORD,
        "email": fields.pop("email", f"{username}@{admin.domain}"),
        "fullName": "Uma User",
        "tenantId": admin.tenant_id,
        "role": "user",
        **fields,
    }


# --- Every failure has the one error shape and the right status ------------------------------


async def test_unknown_route_is_404(client: TestClient[Any, Any]) -> None:
    resp = await client.get(f"/v1/{unique('nothing')}")
    assert resp.status == 404
    assert (await error_of(resp))["code"] == "not_found"


async def test_wrong_method_is_405_with_allow(client: TestClient[Any, Any], admin: Account) -> None:
    resp = await client.delete(f"/v1/users/{admin.user_id}", headers=admin.auth)
    assert resp.status == 405
    assert (await error_of(resp))["code"] == "method_not_allowed"
    assert set(resp.headers["Allow"].split(",")) == {"GET", "PATCH"}


async def test_body_over_limit_with_content_length_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=2048)
    body = json.dumps({"username": "x" * 3000, "password": "p", "tenantId": "t"}).encode()
    resp = await client.post("/v1/auth/login", data=body, headers=JSON)
    assert resp.request_info.headers["Content-Length"] == str(len(body))
    assert resp.status == 413
    assert (await error_of(resp))["code"] == "payload_too_large"


async def test_chunked_body_over_limit_is_413(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"username": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'", "password": "p", "tenantId": "t"}'

    resp = await client.post("/v1/auth/login", data=chunks(), headers=JSON)
    assert "Content-Length" not in resp.request_info.headers
    assert resp.request_info.headers["Transfer-Encoding"] == "chunked"
    assert resp.status == 413
    assert (await error_of(resp))["code"] == "payload_too_large"


async def test_body_under_limit_is_served(make_client: MakeClient) -> None:
    client = await make_client(max_body_bytes=2048)
    resp = await client.post(
        "/v1/auth/login", json={"username": "x" * 200, "password": "p", "tenantId": "t"}
    )
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "invalid_credentials"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_wrong_content_type_is_415(
    client: TestClient[Any, Any], admin: Account, content_type: str
) -> None:
    resp = await client.post(
        "/v1/auth/login",
        data=json.dumps(login_body(admin)).encode(),
        headers={"Content-Type": content_type},
    )
    assert resp.status == 415
    assert (await error_of(resp))["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"username": "a", "password":', id="truncated"),
        pytest.param(b"not json at all", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b"   \n", id="blank"),
        pytest.param(b'[{"username": "a", "password": "b", "tenantId": "c"}]', id="array"),
        pytest.param(b'"a string"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"username": "\xff\xfe"}', id="invalid-utf8"),
    ],
)
async def test_malformed_body_is_400(client: TestClient[Any, Any], raw: bytes) -> None:
    resp = await client.post("/v1/auth/login", data=raw, headers=JSON)
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "invalid_json"


async def test_strict_types_are_422_naming_the_field(
    client: TestClient[Any, Any], admin: Account
) -> None:
    resp = await client.post("/v1/auth/login", json=login_body(admin, username=123))
    assert resp.status == 422
    error = await error_of(resp)
    assert error["code"] == "validation_failed"
    assert [d["field"] for d in error["details"]] == ["username"]


async def test_nested_field_errors_name_the_path(client: TestClient[Any, Any]) -> None:
    domain = f"{unique('d')}.example"
    resp = await client.post(
        "/v1/tenants",
        json={
            "name": "Acme",
            "domain": domain,
            "contactEmail": f"ops@{domain}",
            "plan": "standard",
            "admin": {
                "username": unique("a"),
                "email": f"a@{domain}",
                "fullName": "Ada",
                "password": True,
            },
        },
    )
    assert resp.status == 422
    fields = [d["field"] for d in (await error_of(resp))["details"]]
    assert fields == ["admin.password"]


async def test_unknown_field_is_refused(client: TestClient[Any, Any], admin: Account) -> None:
    resp = await client.post("/v1/auth/login", json=login_body(admin, isAdmin=True))
    assert resp.status == 422
    assert [d["field"] for d in (await error_of(resp))["details"]] == ["isAdmin"]


async def test_unicode_round_trips(client: TestClient[Any, Any]) -> None:
    name = "Åcme 🚀 Лаб 日本語"
    account = await signup(client, name=name)
    resp = await client.get(f"/v1/tenants/{account.tenant_id}", headers=account.auth)
    assert resp.status == 200
    assert (await resp.json())["name"] == name

    full_name = "Zoë 🎉🏽 Ñandú"
    resp = await client.patch(
        f"/v1/users/{account.user_id}", headers=account.auth, json={"fullName": full_name}
    )
    assert resp.status == 200, await resp.text()
    resp = await client.get("/v1/users/me", headers=account.auth)
    assert (await resp.json())["fullName"] == full_name


@pytest.mark.parametrize("username", ["ünïcødé😀", "😀" * 200, "🏳️‍🌈" * 10, "\u202eevil"])
async def test_unicode_login_is_a_plain_401(
    client: TestClient[Any, Any], admin: Account, username: str
) -> None:
    resp = await client.post("/v1/auth/login", json=login_body(admin, username=username))
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    "full_name",
    [
        pytest.param("Ada 👩‍💻 Lovelace", id="emoji-zwj-sequence"),
        pytest.param("Family 👨‍👩‍👧", id="family-emoji"),
        pytest.param("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", id="persian-zwnj"),
        pytest.param("\u0d15\u0d4d\u200d", id="malayalam-zwj"),
    ],
)
async def test_names_with_joiners_are_accepted(
    client: TestClient[Any, Any], admin: Account, full_name: str
) -> None:
    # Zero-width joiners are format characters (Cf), not control characters: emoji sequences
    # and several scripts need them.
    resp = await client.patch(
        f"/v1/users/{admin.user_id}", headers=admin.auth, json={"fullName": full_name}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["fullName"] == full_name


@pytest.mark.parametrize("full_name", ["Ada\u0000", "Ada\nLovelace", "Ada\u007f", "\u001b[31mAda"])
async def test_names_with_control_characters_are_422(
    client: TestClient[Any, Any], admin: Account, full_name: str
) -> None:
    resp = await client.patch(
        f"/v1/users/{admin.user_id}", headers=admin.auth, json={"fullName": full_name}
    )
    assert resp.status == 422
    assert [d["field"] for d in (await error_of(resp))["details"]] == ["fullName"]


@pytest.mark.parametrize("field", ["username", "password", "tenantId"])
async def test_nul_character_in_login_is_not_a_server_error(
    client: TestClient[Any, Any], admin: Account, field: str
) -> None:
    # PostgreSQL text cannot hold U+0000; it must be refused before it reaches a query.
    body = login_body(admin, **{field: "ab\u0000cd"})
    resp = await client.post("/v1/auth/login", json=body)
    assert resp.status in (401, 422), await resp.text()
    await error_of(resp)


async def test_lone_surrogate_is_400(client: TestClient[Any, Any], admin: Account) -> None:
    raw = json.dumps(login_body(admin, username="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud83d")
    resp = await client.post("/v1/auth/login", data=raw.encode(), headers=JSON)
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "invalid_json"


@pytest.mark.parametrize("field", ["username", "password", "tenantId"])
async def test_ten_thousand_chars_in_login_is_422(
    client: TestClient[Any, Any], admin: Account, field: str
) -> None:
    resp = await client.post("/v1/auth/login", json=login_body(admin, **{field: "é" * 10_000}))
    assert resp.status == 422
    assert [d["field"] for d in (await error_of(resp))["details"]] == [field]


@pytest.mark.parametrize("field", ["username", "password", "email", "fullName"])
async def test_ten_thousand_chars_in_register_is_422(
    client: TestClient[Any, Any], admin: Account, field: str
) -> None:
    body = register_body(admin, **{field: "😀" * 10_000})
    resp = await client.post("/v1/users/register", headers=admin.auth, json=body)
    assert resp.status == 422
    assert field in [d["field"] for d in (await error_of(resp))["details"]]


async def test_ten_thousand_chars_in_signup_is_422(client: TestClient[Any, Any]) -> None:
    domain = f"{unique('d')}.example"
    resp = await client.post(
        "/v1/tenants",
        json={
            "name": "N" * 10_000,
            "domain": domain,
            "contactEmail": f"ops@{domain}",
            "plan": "standard",
            "admin": {
                "username": unique("a"),
                "email": f"a@{domain}",
                "fullName": "Ada",
                "password": PASSWORD,
            },
        },
    )
    assert resp.status == 422
    assert [d["field"] for d in (await error_of(resp))["details"]] == ["name"]


async def test_long_token_is_401(client: TestClient[Any, Any]) -> None:
    # Header lines are capped (8 KiB) by aiohttp's parser itself, before any middleware.
    resp = await client.get("/v1/users/me", headers={"Authorization": "Bearer " + "a" * 4_000})
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "invalid_token"
    assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_authentication_comes_before_query_validation(client: TestClient[Any, Any]) -> None:
    # An anonymous caller learns nothing about an operation's input rules.
    resp = await client.get("/v1/users", params={"page": "0"})
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "missing_token"


async def test_authentication_comes_before_body_validation(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v1/users/register", data=b"{", headers=JSON)
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "missing_token"


# --- X-Request-ID --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_id", ["abc-123_XYZ.4:5", "x" * 64, "0f" * 16, uuid.uuid4().hex.upper()]
)
async def test_valid_request_id_is_echoed(client: TestClient[Any, Any], request_id: str) -> None:
    resp = await client.get("/healthz", headers={"X-Request-ID": request_id})
    assert resp.status == 200
    assert resp.headers["X-Request-ID"] == request_id


async def test_request_id_is_echoed_on_errors(client: TestClient[Any, Any]) -> None:
    request_id = unique("err")
    resp = await client.get(f"/v1/{unique('nothing')}", headers={"X-Request-ID": request_id})
    assert resp.status == 404
    assert resp.headers["X-Request-ID"] == request_id


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("x" * 65, id="too-long"),
        pytest.param("has space", id="space"),
        pytest.param("a/b", id="slash"),
        pytest.param("<script>", id="markup"),
        pytest.param('a"b', id="quote"),
    ],
)
async def test_absent_or_invalid_request_id_is_replaced(
    client: TestClient[Any, Any], request_id: str | None
) -> None:
    headers = {} if request_id is None else {"X-Request-ID": request_id}
    first = await client.get("/healthz", headers=headers)
    second = await client.get("/healthz", headers=headers)
    generated = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    for value in generated:
        assert HEX32.fullmatch(value), value
    assert generated[0] != generated[1]


# --- JSON access log -------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Give back the logging set-up that configure_logging replaces."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access")
    access_level = access.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    access.setLevel(access_level)
    structlog.configure(**config)


def log_lines(err: str, request_id: str) -> list[dict[str, Any]]:
    """Every stderr line that mentions ``request_id``, each parsed as JSON."""
    lines = [json.loads(line) for line in err.splitlines() if request_id in line]
    assert all(isinstance(line, dict) for line in lines)
    return lines


@pytest.mark.usefixtures("restore_logging")
async def test_request_log_line_is_json_with_context(
    client: TestClient[Any, Any], admin: Account, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True)
    request_id = unique("log")
    capfd.readouterr()
    resp = await client.get("/v1/users/me", headers={**admin.auth, "X-Request-ID": request_id})
    assert resp.status == 200
    me = await resp.json()
    assert (me["userId"], me["tenantId"], me["role"]) == (admin.user_id, admin.tenant_id, "admin")
    lines = log_lines(capfd.readouterr().err, request_id)
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) == 1, lines
    line = requests[0]
    assert line["request_id"] == request_id
    assert line["tenant"] == admin.tenant_id
    assert line["user"] == admin.user_id
    assert line["method"] == "GET"
    assert line["path"] == "/v1/users/me"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int | float)
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"


@pytest.mark.usefixtures("restore_logging")
async def test_error_log_line_carries_status(
    client: TestClient[Any, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True)
    request_id = unique("log")
    capfd.readouterr()
    resp = await client.get("/v1/users/me", headers={"X-Request-ID": request_id})
    assert resp.status == 401
    [line] = [
        line
        for line in log_lines(capfd.readouterr().err, request_id)
        if line.get("event") == "request"
    ]
    assert line["status"] == 401
    assert "tenant" not in line
    assert "user" not in line


@pytest.mark.usefixtures("restore_logging")
async def test_caller_context_does_not_leak_into_the_next_request(
    client: TestClient[Any, Any], admin: Account, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True)
    resp = await client.get("/v1/users/me", headers=admin.auth)
    assert resp.status == 200
    request_id = unique("anon")
    capfd.readouterr()
    resp = await client.get("/healthz", headers={"X-Request-ID": request_id})
    assert resp.status == 200
    [line] = [
        line
        for line in log_lines(capfd.readouterr().err, request_id)
        if line.get("event") == "request"
    ]
    assert "tenant" not in line
    assert "user" not in line


# --- What aiohttp's HTTP parser refuses, before any middleware --------------------------------


async def raw_exchange(
    client: TestClient[Any, Any], request: bytes
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as is over a new connection; the status, headers and body answered.

    The server closes the connection after such an answer, so reading to the end is enough.
    """
    assert client.port is not None
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    return int(status_line.split()[1]), headers, body


UNPARSABLE = {
    "header-over-8-KiB": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    "url-over-8-KiB": b"GET /healthz?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "undecodable-query": b"GET /v1/pocs/search?q=caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("request_bytes", list(UNPARSABLE.values()), ids=list(UNPARSABLE))
async def test_what_the_http_parser_refuses_is_400_in_the_error_shape_and_one_log_line(
    client: TestClient[Any, Any], capfd: pytest.CaptureFixture[str], request_bytes: bytes
) -> None:
    configure_logging(json=True)
    capfd.readouterr()
    status, headers, body = await raw_exchange(client, request_bytes)
    assert status == 400, body
    assert headers["content-type"].startswith("application/json"), headers
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "bad_request"
    assert 0 < len(error["message"]) <= 200, error  # no echo of the 9000 bytes
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = log_lines(err, headers["x-request-id"])
    assert len(lines) == 1, err
    assert lines[0]["status"] == 400
    assert lines[0]["level"] == "info"
    assert "exception" not in lines[0]


@pytest.mark.usefixtures("restore_logging")
async def test_an_error_outside_the_middleware_is_500_in_the_error_shape_with_its_traceback(
    settings: Settings, aiohttp_client: AiohttpClient, capfd: pytest.CaptureFixture[str]
) -> None:
    @web.middleware
    async def broken(request: web.Request, handler: Any) -> web.StreamResponse:
        raise RuntimeError("a bug before the pipeline")

    app = create_app(settings)
    app.middlewares.insert(0, broken)  # outside the pipeline, which catches everything
    client = await aiohttp_client(AppServer(app))
    configure_logging(json=True)
    capfd.readouterr()
    resp = await client.get("/healthz")
    assert resp.status == 500
    assert (await error_of(resp))["code"] == "internal_error"
    [line] = log_lines(capfd.readouterr().err, resp.headers["X-Request-ID"])
    assert line["level"] == "error"
    assert "RuntimeError: a bug before the pipeline" in line["exception"]


# --- Audit log -------------------------------------------------------------------------------


async def test_mutation_writes_an_audit_row(
    client: TestClient[Any, Any], admin: Account, engines: Engines
) -> None:
    request_id = unique("audit")
    user_agent = f"pocdojo-tests/{unique('ua')}"
    resp = await client.post(
        "/v1/users/register",
        headers={
            **admin.auth,
            "X-Request-ID": request_id,
            "X-Forwarded-For": "203.0.113.7",
            "User-Agent": user_agent,
        },
        json=register_body(admin),
    )
    assert resp.status == 201, await resp.text()
    new_user = (await resp.json())["userId"]
    rows = await owner_fetch(
        engines,
        """SELECT tenant_id, user_id, action, entity_type, entity_id, ip_address, user_agent
           FROM audit_log WHERE request_id = $1""",
        request_id,
    )
    assert len(rows) == 1
    row = rows[0]
    assert str(row["tenant_id"]) == admin.tenant_id
    assert str(row["user_id"]) == admin.user_id
    assert row["action"] == "create"
    assert row["entity_type"] == "user"
    assert str(row["entity_id"]) == new_user
    assert row["ip_address"] == "203.0.113.7"
    assert row["user_agent"] == user_agent


async def test_audit_ignores_forwarded_for_from_an_untrusted_peer(
    make_client: MakeClient, engines: Engines
) -> None:
    client = await make_client(trust_forwarded_for=False)
    admin = await signup(client)
    request_id = unique("audit")
    resp = await client.post(
        "/v1/users/register",
        headers={**admin.auth, "X-Request-ID": request_id, "X-Forwarded-For": "203.0.113.7"},
        json=register_body(admin),
    )
    assert resp.status == 201, await resp.text()
    rows = await owner_fetch(
        engines, "SELECT ip_address FROM audit_log WHERE request_id = $1", request_id
    )
    assert [r["ip_address"] for r in rows] == ["127.0.0.1"]


async def test_failed_mutation_writes_nothing(
    client: TestClient[Any, Any], admin: Account, engines: Engines
) -> None:
    existing = await register(client, admin, log_in=False)
    request_id = unique("dup")
    email = f"{unique('e')}@{admin.domain}"
    resp = await client.post(
        "/v1/users/register",
        headers={**admin.auth, "X-Request-ID": request_id},
        json=register_body(admin, username=existing.username.upper(), email=email),
    )
    assert resp.status == 409
    assert (await error_of(resp))["code"] == "username_taken"
    assert resp.headers["X-Request-ID"] == request_id
    users = await owner_fetch(
        engines, "SELECT id FROM users WHERE tenant_id = $1 AND email = $2", admin.tenant_id, email
    )
    assert users == []
    audit = await owner_fetch(
        engines, "SELECT action FROM audit_log WHERE request_id = $1", request_id
    )
    assert audit == []
    count = await owner_fetch(
        engines, "SELECT count(*) AS n FROM users WHERE tenant_id = $1", uuid.UUID(admin.tenant_id)
    )
    assert count[0]["n"] == 2


# --- Health, readiness, metrics --------------------------------------------------------------


async def test_healthz(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_when_everything_answers(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_readyz_503_without_redis_while_the_api_still_serves(
    make_client: MakeClient,
) -> None:
    client = await make_client(redis_url=UNREACHABLE_REDIS)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error")

    # Rate limits fail open: signup, login and authenticated calls all work.
    account = await signup(client)
    resp = await client.get("/v1/users/me", headers=account.auth)
    assert resp.status == 200
    assert (await resp.json())["userId"] == account.user_id
    assert (await client.get("/healthz")).status == 200


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples called ``name``, keyed by their sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def test_metrics_report_the_engines_and_the_queue_due(
    client: TestClient[Any, Any], make_client: MakeClient
) -> None:
    redis = client.app[appkeys.redis_key]
    queue = client.app[appkeys.settings_key].job_queue
    now_ms = int(time.time() * 1000)
    # Two entries due (one of them a higher plan's, due "earlier"), one deferred retry.
    await redis.zadd(queue, {"a": now_ms - 3_600_000, "b": now_ms, "c": now_ms + 60_000})
    text = await (await client.get("/metrics")).text()
    up = samples(text, "pocdojo_dependency_up")
    assert up == {(("dependency", "database"),): 1.0, (("dependency", "redis"),): 1.0}
    assert samples(text, "pocdojo_job_queue_depth") == {(): 2.0}

    cut_off = await make_client(redis_url=UNREACHABLE_REDIS)
    text = await (await cut_off.get("/metrics")).text()
    up = samples(text, "pocdojo_dependency_up")
    assert up == {(("dependency", "database"),): 1.0, (("dependency", "redis"),): 0.0}


async def test_metrics_use_route_templates(client: TestClient[Any, Any], admin: Account) -> None:
    for _ in range(2):
        assert (await client.get(f"/v1/users/{admin.user_id}", headers=admin.auth)).status == 200
    missing = uuid.uuid4()
    assert (await client.get(f"/v1/users/{missing}", headers=admin.auth)).status == 404
    unknown = f"/v1/{unique('nothing')}"
    assert (await client.get(unknown)).status == 404

    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    requests = samples(text, "pocdojo_http_requests_total")
    template = "/v1/users/{userId}"
    key = (("method", "GET"), ("route", template))
    assert requests[(*key, ("status", "200"))] == 2
    assert requests[(*key, ("status", "404"))] == 1
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    routes = {dict(labels)["route"] for labels in requests}
    assert "/v1/tenants" in routes
    assert not any(admin.user_id in r or str(missing) in r or unknown in r for r in routes)

    latency = "pocdojo_http_request_duration_seconds"
    assert samples(text, f"{latency}_count")[key] == 3
    assert samples(text, f"{latency}_sum")[key] > 0
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples(text, f"{latency}_bucket").items()
        if dict(labels)["route"] == template
    }
    assert buckets["+Inf"] == 3
    assert len(buckets) > 1
