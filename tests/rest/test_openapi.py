"""The OpenAPI document: valid 3.1, complete against the router, and true to the responses."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import SecretStr

from pocdojo.app import create_app
from pocdojo.core import appkeys
from pocdojo.core.settings import Settings
from pocdojo.web import pages
from tests.helpers import Account, error_of, login

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
ERROR_REF = "#/components/schemas/ErrorResponse"
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
SOCKET_REFUSALS = ("400", "401", "403", "404", "410", "503")


async def document(client: TestClient[Any, Any]) -> dict[str, Any]:
    resp = await client.get("/v1/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    doc: dict[str, Any] = await resp.json()
    return doc


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation object) for every documented operation."""
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON pointer; KeyError when it points at nothing."""
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs_in(node: Any) -> Iterator[str]:
    """Every ``$ref`` anywhere under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def assert_matches(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Validate ``instance`` against a schema of ``doc`` (its refs resolved within ``doc``)."""
    root = {**schema, "components": doc["components"]}
    OAS31Validator(root, format_checker=oas31_format_checker).validate(instance)


def response_schema(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    schema: dict[str, Any] = responses[str(status)]["content"]["application/json"]["schema"]
    return schema


async def test_document_is_valid_openapi_3_1(client: TestClient[Any, Any]) -> None:
    doc = await document(client)
    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every API route in ``app``'s router, HEAD aside (and the
    web front's page and asset routes, which are no part of the API)."""
    found: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        assert route.resource is not None
        if route.resource.canonical in pages.PATHS:
            continue
        found.add((route.method.lower(), route.resource.canonical))
    return found


async def test_every_route_is_documented(client: TestClient[Any, Any]) -> None:
    doc = await document(client)
    app = client.app
    assert isinstance(app, web.Application)
    routes = routed(app)
    assert len(routes) > 5
    documented = {(method, path) for method, path, _ in operations(doc)}
    assert sorted(routes - documented) == [], "routes missing from the OpenAPI document"
    assert sorted(documented - routes) == [], "documented operations that are not routed"


def test_an_undocumented_route_would_be_noticed(settings: Settings) -> None:
    app = create_app(settings)

    async def hidden(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_route("POST", "/v1/hidden/{thing}", hidden)
    documented = {(method, path) for method, path, _ in operations(app[appkeys.openapi_key])}
    assert routed(app) - documented == {("post", "/v1/hidden/{thing}")}


async def test_operation_ids_are_unique(client: TestClient[Any, Any]) -> None:
    doc = await document(client)
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


async def test_error_responses_use_the_error_schema(client: TestClient[Any, Any]) -> None:
    doc = await document(client)
    error_schema = doc["components"]["schemas"]["ErrorResponse"]
    assert error_schema["required"] == ["error"]
    body = resolve(doc, error_schema["properties"]["error"]["$ref"])
    assert {"code", "message"} <= set(body["required"])
    assert {"code", "message", "details"} <= set(body["properties"])

    wrong: list[str] = []
    for method, path, operation in operations(doc):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if (method, path, status) == ("get", "/readyz", "503"):
                # Not ready is answered with the readiness report itself.
                assert schema == {"$ref": "#/components/schemas/Readiness"}
                continue
            if schema != {"$ref": ERROR_REF} or not response.get("description"):
                wrong.append(f"{method.upper()} {path} {status}")
    assert wrong == []


async def test_expected_error_statuses_are_documented(client: TestClient[Any, Any]) -> None:
    doc = await document(client)
    missing: list[str] = []
    for method, path, operation in operations(doc):
        if "101" in operation["responses"]:
            # A WebSocket refuses with a close code after the upgrade (docs/realtime.md), and a
            # plain GET with the status that code stands for.
            assert set(operation["responses"]) == {"101", *SOCKET_REFUSALS}
            continue
        expected: set[str] = set()
        if "requestBody" in operation:
            expected |= {"400", "413", "415", "422"}
        if operation.get("security") == BEARER:
            expected |= {"401", "429"}
        if re.search(r"{\w+}", path) and method != "put":
            expected.add("404")  # a PUT creates what its path names: nothing to be missing
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            expected.add("400")
        absent = expected - set(operation["responses"])
        missing += [f"{method.upper()} {path} {code}" for code in sorted(absent)]
    assert missing == []


async def test_every_reference_resolves(client: TestClient[Any, Any]) -> None:
    doc = await document(client)
    schemas = doc["components"]["schemas"]
    bodies = 0
    optional: set[tuple[str, str]] = set()
    for method, path, operation in operations(doc):
        if "requestBody" not in operation:
            continue
        bodies += 1
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        ref = schema["$ref"]
        assert ref.startswith("#/components/schemas/"), f"{method.upper()} {path}"
        assert ref.rsplit("/", 1)[1] in schemas, f"{method.upper()} {path}: {ref}"
        if operation["requestBody"]["required"] is False:
            optional.add((method, path))
    assert bodies > 0
    # Only a body whose fields are all optional may be left out: ending a session.
    assert optional == {("post", "/v1/dojos/sessions/{sessionId}/end")}

    dangling = []
    for ref in set(refs_in(doc)):
        try:
            resolve(doc, ref)
        except KeyError:
            dangling.append(ref)
    assert dangling == []


async def test_bearer_security_scheme(client: TestClient[Any, Any]) -> None:
    doc = await document(client)
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert doc["paths"]["/v1/users/me"]["get"]["security"] == BEARER
    assert "security" not in doc["paths"]["/v1/auth/login"]["post"]
    assert "security" not in doc["paths"]["/healthz"]["get"]


async def test_security_declarations_match_behaviour(client: TestClient[Any, Any]) -> None:
    """An operation declares bearerAuth exactly when it refuses a caller without a token."""
    doc = await document(client)
    wrong: list[str] = []
    for method, path, operation in operations(doc):
        url = re.sub(r"{\w+}", str(uuid.uuid4()), path)
        kwargs: dict[str, Any] = {"json": {}} if "requestBody" in operation else {}
        resp = await client.request(method.upper(), url, **kwargs)
        refused = resp.status == 401 and (await error_of(resp))["code"] == "missing_token"
        declared = operation.get("security") == BEARER
        if refused != declared:
            wrong.append(f"{method.upper()} {path}: {resp.status}, declared={declared}")
    assert wrong == []


async def test_success_bodies_match_their_schemas(
    client: TestClient[Any, Any], admin: Account
) -> None:
    doc = await document(client)
    checks: list[tuple[str, str, dict[str, Any], int]] = [
        ("get", "/healthz", {}, 200),
        ("get", "/readyz", {}, 200),
        ("get", "/v1/users/me", {"headers": admin.auth}, 200),
        ("get", "/v1/users/{userId}", {"headers": admin.auth}, 200),
        ("get", "/v1/users", {"headers": admin.auth}, 200),
        ("get", "/v1/tenants/{tenantId}", {"headers": admin.auth}, 200),
    ]
    for method, path, kwargs, status in checks:
        url = path.replace("{userId}", admin.user_id).replace("{tenantId}", admin.tenant_id)
        resp = await client.request(method.upper(), url, **kwargs)
        assert resp.status == status, f"{url}: {await resp.text()}"
        assert_matches(doc, response_schema(doc, method, path, status), await resp.json())

    resp = await client.post(
        "/v1/auth/login",
        json={"username": admin.username, "password": admin.password, "tenantId": admin.domain},
    )
    assert resp.status == 200
    assert_matches(doc, response_schema(doc, "post", "/v1/auth/login", 200), await resp.json())
    await login(client, admin)


async def test_error_bodies_match_the_error_schema(
    client: TestClient[Any, Any], admin: Account
) -> None:
    doc = await document(client)
    failures: list[tuple[str, str, dict[str, Any], int]] = [
        ("get", "/v1/users/me", {}, 401),
        ("get", "/v1/users/{userId}", {"headers": admin.auth}, 404),
        ("post", "/v1/auth/login", {"json": {"username": 1}}, 422),
        (
            "post",
            "/v1/auth/login",
            {"data": b"{", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("post", "/v1/auth/login", {"data": b"{}", "headers": {"Content-Type": "text/plain"}}, 415),
    ]
    for method, path, kwargs, status in failures:
        url = path.replace("{userId}", str(uuid.uuid4()))
        resp = await client.request(method.upper(), url, **kwargs)
        assert resp.status == status, f"{method} {url}: {await resp.text()}"
        assert_matches(doc, response_schema(doc, method, path, status), await resp.json())


async def test_plain_gets_on_sockets_match_their_documented_answers(
    client: TestClient[Any, Any], admin: Account
) -> None:
    doc = await document(client)
    sockets = [p for m, p, o in operations(doc) if "101" in o["responses"]]
    assert len(sockets) == 2
    for path in sockets:
        url = path.replace("{sessionId}", str(uuid.uuid4()))
        for params, status in (({}, 401), ({"token": "x.y.z"}, 401)):
            resp = await client.get(url, params=params)
            assert resp.status == status, await resp.text()
            assert_matches(doc, response_schema(doc, "get", path, status), await resp.json())


async def test_a_405_allows_exactly_the_documented_methods(
    client: TestClient[Any, Any], admin: Account
) -> None:
    """A literal path beside an id route (/v1/users/me beside /v1/users/{userId}) is not also
    matched by the id route: its 405 lists its own methods only."""
    doc = await document(client)
    wrong: list[str] = []
    for path, item in doc["paths"].items():
        documented = {m.upper() for m in item if m in METHODS}
        url = re.sub(r"{\w+}", str(uuid.uuid4()), path)
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented):
            resp = await client.request(method, url, headers=admin.auth)
            allowed = set(resp.headers.get("Allow", "").split(",")) - {"", "HEAD"}
            if resp.status != 405 or allowed != documented:
                wrong.append(f"{method} {path}: {resp.status}, Allow {sorted(allowed)}")
    assert wrong == []


async def test_readyz_503_body_matches_its_documented_schema(make_client: MakeClient) -> None:
    client = await make_client(redis_url=SecretStr("redis://127.0.0.1:1/0"))
    doc = await document(client)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert_matches(doc, response_schema(doc, "get", "/readyz", 503), await resp.json())


@pytest.mark.parametrize("model", ["LoginRequest", "UserRegister", "TenantCreate"])
async def test_request_schemas_refuse_unknown_fields(
    client: TestClient[Any, Any], model: str
) -> None:
    doc = await document(client)
    schema = doc["components"]["schemas"][model]
    assert schema.get("additionalProperties") is False
    assert schema["required"]


@pytest.mark.parametrize(
    ("model", "body", "valid"),
    [
        # A change names at least one field; title, description, language, tags and status
        # cannot be cleared, the repository URL and the documentation can.
        ("PocUpdate", {}, False),
        ("PocUpdate", {"title": None}, False),
        ("PocUpdate", {"tags": None}, False),
        ("PocUpdate", {"status": None}, False),
        ("PocUpdate", {"repositoryUrl": None}, True),
        ("PocUpdate", {"title": "New"}, True),
        # A user change names at least one of fullName, email, password, role and isActive.
        ("UserPatch", {}, False),
        ("UserPatch", {"fullName": None}, False),
        ("UserPatch", {"currentPassword": "Str0ng!Passw0rd"}, False),
        ("UserPatch", {"fullName": "Ada", "email": None}, True),
        ("UserPatch", {"isActive": False}, True),
        # Tags are at most 50 characters.
        ("PocCreate", {"tags": ["t" * 51]}, False),
        # And not empty.
        ("PocCreate", {"tags": [""]}, False),
        # Yearly videos start in 2020.
        ("VideoGenerate", {"userId": str(uuid.uuid4()), "year": 2019}, False),
    ],
)
async def test_request_schemas_state_the_rules_the_server_applies(
    client: TestClient[Any, Any], model: str, body: dict[str, Any], valid: bool
) -> None:
    doc = await document(client)
    schema = doc["components"]["schemas"][model]
    if model == "PocCreate":
        schema, body = schema["properties"]["tags"], body["tags"]
    root = {**schema, "components": doc["components"]}
    assert OAS31Validator(root, format_checker=oas31_format_checker).is_valid(body) is valid


@pytest.mark.parametrize(
    ("where", "rule"),
    [
        ("AdminAccount.password", "uppercase"),
        ("UserRegister.password", "special character"),
        ("PocCreate.title", "control characters"),
        ("PocCreate.tags", "not blank"),
        ("PocCreate.description", "NUL"),
        ("TenantCreate.name", "control characters"),
        ("SessionCreate.scheduledAt", "in the future"),
        ("SessionCreate.initialCode", "NUL"),
        ("DateRange", "less than a year"),
        ("GET /v1/pocs/suggest prefix", "control characters"),
    ],
)
async def test_rules_a_schema_cannot_state_are_in_its_description(
    client: TestClient[Any, Any], where: str, rule: str
) -> None:
    doc = await document(client)
    if where.startswith("GET "):
        _, path, name = where.split()
        params = doc["paths"][path]["get"]["parameters"]
        node: dict[str, Any] = next(p for p in params if p["name"] == name)["schema"]
    else:
        model, _, field = where.partition(".")
        node = doc["components"]["schemas"][model]
        node = node["properties"][field] if field else node
    descriptions = [node.get("description", "")]
    descriptions += [option.get("description", "") for option in node.get("anyOf", [])]
    assert any(rule in text for text in descriptions), node


async def test_the_template_id_path_parameter_states_its_rule(
    client: TestClient[Any, Any],
) -> None:
    doc = await document(client)
    item = doc["paths"]["/v1/notifications/templates/{templateId}"]
    for method in ("put", "get", "delete"):
        (param,) = [p for p in item[method]["parameters"] if p["in"] == "path"]
        schema = param["schema"]
        assert (schema["minLength"], schema["maxLength"]) == (1, 50), method
        assert schema["pattern"] == r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", method


async def test_refusals_fuzzing_found_are_documented(
    client: TestClient[Any, Any], admin: Account
) -> None:
    doc = await document(client)
    refusals: list[tuple[str, str, dict[str, Any], int]] = [
        # Another tenant's id in the query.
        ("get", "/v1/pocs/search", {"params": {"tenantId": str(uuid.uuid4())}}, 403),
        # An admin asking for the video of a user not in the tenant.
        ("post", "/v1/videos/generate-yearly",
         {"json": {"userId": str(uuid.uuid4()), "year": 2024}}, 404),
    ]  # fmt: skip
    for method, path, kwargs, status in refusals:
        resp = await client.request(method.upper(), path, headers=admin.auth, **kwargs)
        assert resp.status == status, await resp.text()
        assert_matches(doc, response_schema(doc, method, path, status), await resp.json())
