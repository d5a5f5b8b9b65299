"""Property-based tests, by schemathesis, of every operation in the OpenAPI document against a
live ``pocdojo serve`` on the suite's PostgreSQL and Valkey.

Each operation is a test of its own, run with generated valid and invalid input. No answer may
be a 5xx, and every answer must conform to the document: a documented status, its content
type, its body schema and headers. schemathesis's other checks hold as well (invalid input is
refused, an undocumented method gets a 405 with the right ``Allow``, authentication is
enforced), but where ``NOT_ACCEPTED`` says why one does not apply.

- The schema is the document the code builds, loaded with the module so that each operation
  is a test; the first test checks it is the one the server serves.
  ``schemathesis.pytest.from_fixture``, which would load it from the server, fails on pytest
  9.2 (it sets a test item's ``_nodeid``, which pytest no longer has).
- Real objects come from a fixture rather than from schemathesis's stateful (links) tests:
  ``world`` creates a tenant, its admin (whose token every authenticated case sends), a second
  user, POCs, a favorite, a dojo, a report, a video, a template and a notification, and
  ``aim`` points most generated ids at them. So every operation gets real ids whatever the
  others answer, each failure is one request that replays alone, and the ids in a body are
  the caller's (userId, tenantId), as they must be, which a chain of generated requests
  would rarely manage. The last test checks the ids did reach real objects.
- Deterministic: derandomized generation, a fixed seed, no example database.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis import Case

import pocdojo
from pocdojo.app import ROUTES
from pocdojo.core.api import openapi_document
from tests.conftest import TEST_JWT_SECRET, Engines
from tests.helpers import PASSWORD, unique
from tests.servers import Server, call, cli_env, serving

# Starting the server is part of the first test's setup.
pytestmark = pytest.mark.timeout(300)

# How many generated cases an operation gets beyond the coverage phase's own, which tries each
# boundary and each kind of invalid value once; more where the input has more to combine.
EXAMPLES = 40
MORE_EXAMPLES = {
    "POST /v1/tenants": 80,
    "PATCH /v1/users/{userId}": 80,
    "POST /v1/pocs": 80,
    "PUT /v1/pocs/{pocId}": 80,
    "GET /v1/pocs/search": 100,
    "POST /v1/dojos/sessions": 80,
    "POST /v1/dojos/sessions/{sessionId}/join": 60,
    "POST /v1/reports/generate": 80,
    "POST /v1/notifications/email": 60,
}

# positive_data_acceptance holds that a schema-valid request is accepted: that the schemas are
# all the validation there is. These operations also apply rules the document can only state
# in descriptions, or that depend on stored data; refusing a request for one is no bug.
NOT_ACCEPTED = {
    "POST /v1/tenants": "the password policy; names without control characters",
    "POST /v1/users/register": "the password policy; a full name without control characters",
    "PATCH /v1/users/{userId}": "the password policy; the current password must be right",
    "POST /v1/pocs": "a supported language, in any case; text without control or NUL characters",
    "PUT /v1/pocs/{pocId}": "a supported language; text without control or NUL characters",
    "GET /v1/pocs/search": "a supported language; text without control characters",
    "GET /v1/pocs/suggest": "a prefix without control characters",
    "POST /v1/dojos/sessions": "scheduledAt in the future; a supported language",
    "POST /v1/reports/generate": "tags not blank; a supported language; a range under a year",
    "POST /v1/videos/generate-yearly": "a year up to this one, in which the user has a POC",
    "POST /v1/notifications/email": "a template that exists",
    "PUT /v1/notifications/templates/{templateId}": "templates that compile (Jinja)",
    # A plain GET cannot be upgraded; it gets the status the socket's close code stands for.
    "GET /v1/dojos/sessions/{sessionId}/doc": "a WebSocket handshake",
    "GET /v1/dojos/sessions/{sessionId}/events": "a WebSocket handshake",
}


@dataclass
class World:
    """The live server, the admin's token, and the real objects cases are aimed at."""

    server: Server
    token: str
    # Real values by parameter name, and per operation where one needs values of its own.
    ids: dict[str, list[Any]]
    ids_for: dict[str, dict[str, list[Any]]]
    # The statuses each operation answered with.
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def ok(port: int, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    status, data = call(port, method, path, body, token)
    assert status < 300, (method, path, status, data)
    return data


@pytest.fixture(scope="module")
def world(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    variables = {
        "DATABASE_URL": engines.database_url,
        "REDIS_URL": engines.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "LOG_LEVEL": "WARNING",
        # Jobs stay queued: rendering the reports and videos the cases ask for is not under test.
        "WORKER": "false",
        # One token for the whole run, however slow the machine.
        "ACCESS_TOKEN_TTL": "3600",
        "REQUESTS_PER_MINUTE_USER": "1000000",
        "LOGIN_FAIL_LIMIT_IP": "1000000",
        "LOGIN_FAIL_LIMIT_ACCOUNT": "1000000",
    }
    if engines.database_app_url:
        variables["DATABASE_APP_URL"] = engines.database_app_url
    with serving(tmp / "data", cli_env(**variables), tmp / "logs") as server:
        server.wait_until_healthy()
        yield populate(server)


def populate(server: Server) -> World:
    """A tenant with one of everything, through the API."""
    port = server.port
    domain, admin = f"{unique('d')}.example", unique("a")
    ok(port, "POST", "/v1/tenants", {
        "name": "Fuzz Labs", "domain": domain, "contactEmail": f"ops@{domain}",
        "plan": "standard",
        "admin": {"username": admin, "email": f"{admin}@{domain}", "fullName": "Ada",
                  "password": PASSWORD},
    })  # fmt: skip
    login = ok(port, "POST", "/v1/auth/login",
               {"username": admin, "password": PASSWORD, "tenantId": domain})  # fmt: skip
    token, tenant_id, user_id = login["token"], login["tenantId"], login["userId"]
    guest = unique("g")
    other = ok(port, "POST", "/v1/users/register", {
        "username": guest, "password": PASSWORD, "email": f"{guest}@{domain}",
        "fullName": "Gus", "tenantId": tenant_id, "role": "user",
    }, token)  # fmt: skip
    pocs = [
        ok(port, "POST", "/v1/pocs", {
            "title": f"Fuzzed POC {i}", "description": "d", "language": "Go", "tags": ["x"],
            "userId": user_id, "tenantId": tenant_id,
        }, token)["pocId"]
        for i in range(5)
    ]  # fmt: skip
    favorite = ok(port, "POST", "/v1/favorites", {"pocId": pocs[0], "userId": user_id}, token)
    dojo, ended = (
        ok(port, "POST", "/v1/dojos/sessions", {"title": "Fuzz kata", "pocId": pocs[0]}, token)
        for _ in range(2)
    )
    recorded = f"/v1/dojos/sessions/{dojo['sessionId']}/recording"
    recording = ok(port, "POST", recorded, {"action": "start"}, token)
    ok(port, "POST", recorded, {"action": "stop"}, token)
    year = datetime.datetime.now(datetime.UTC).year
    report = ok(port, "POST", "/v1/reports/generate", {
        "reportType": "summary",
        "dateRange": {"startDate": f"{year}-01-01", "endDate": f"{year}-12-31"},
    }, token)  # fmt: skip
    video = ok(port, "POST", "/v1/videos/generate-yearly",
               {"userId": user_id, "year": year}, token)  # fmt: skip
    template, doomed_template = "welcome", "farewell"
    for name in (template, doomed_template):
        ok(port, "PUT", f"/v1/notifications/templates/{name}",
           {"subject": "Hello", "html": "<p>Hi</p>", "text": "Hi"}, token)  # fmt: skip
    note = ok(port, "POST", "/v1/notifications/email",
              {"recipients": [f"x@{domain}"], "templateId": template}, token)  # fmt: skip
    ids: dict[str, list[Any]] = {
        "tenantId": [tenant_id],
        "userId": [user_id, other["userId"]],
        "pocId": pocs[:3],
        "favoriteId": [favorite["favoriteId"]],
        "sessionId": [dojo["sessionId"]],
        "reportId": [report["reportId"]],
        "recordingId": [recording["recordingId"]],
        "videoId": [video["videoId"]],
        "templateId": [template],
        "notificationId": [note["notificationId"]],
        "joinCode": [dojo["joinCode"]],
        "token": [dojo["participantToken"]],
        "language": ["Go", "python", "TypeScript"],
        "year": [year],
    }
    # Deleting and ending take objects of their own, so the others keep answering.
    ids_for = {
        "DELETE /v1/pocs/{pocId}": {"pocId": pocs[3:]},
        "POST /v1/dojos/sessions/{sessionId}/end": {"sessionId": [ended["sessionId"]]},
        "DELETE /v1/notifications/templates/{templateId}": {"templateId": [doomed_template]},
    }
    return World(server, token, ids, ids_for)


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


# Which generated values may be swapped for a real one: those of the same kind, so that a case
# stays as valid or invalid as it was generated. Any other name is a UUID.
FITS: dict[str, Callable[[Any], bool]] = {
    "templateId": lambda v: (
        isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,49}", v) is not None
    ),
    "joinCode": lambda v: isinstance(v, str) and 1 <= len(v) <= 20,
    "token": lambda v: isinstance(v, str),
    "language": lambda v: isinstance(v, str),
    "year": lambda v: type(v) is int and v >= 2020,
}


def aim(case: Case[Any], world: World) -> None:
    """Swap most generated ids (in the path, the query and the top of a body) for real ones."""
    ids = {**world.ids, **world.ids_for.get(case.operation.label, {})}
    containers = [case.path_parameters, case.query, case.body]
    for container in containers:
        if not isinstance(container, dict):
            continue
        for name, value in container.items():
            if name in ids and FITS.get(name, _is_uuid)(value):
                container[name] = pick(value, ids[name])


def pick(value: Any, choices: list[Any]) -> Any:
    """Seven times in ten one of ``choices``, chosen by ``value``; else ``value`` itself."""
    digest = zlib.crc32(str(value).encode())
    return choices[digest % len(choices)] if digest % 10 < 7 else value


def code_document() -> dict[str, Any]:
    return openapi_document(
        [op for group in ROUTES for op in group.operations], version=pocdojo.__version__
    )


CONFIG = schemathesis.Config.from_dict({
    "seed": 13,
    "generation": {
        "mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none",
    },
    "checks": {
        # A body over the size limit is refused, with 413, before it is read.
        "negative_data_rejection": {"expected-statuses": [
            "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429",
        ]},
    },
    "operations": [
        *({"include-name": name, "generation": {"max-examples": count}}
          for name, count in MORE_EXAMPLES.items()),
        *({"include-name": name, "checks": {"positive_data_acceptance": {"enabled": False}}}
          for name in NOT_ACCEPTED),
    ],
})  # fmt: skip
schema = schemathesis.openapi.from_dict(code_document(), config=CONFIG)


def test_the_server_serves_the_document_under_test(world: World) -> None:
    status, served = call(world.server.port, "GET", "/v1/openapi.json")
    assert status == 200
    assert served == json.loads(json.dumps(code_document()))


@schema.parametrize()
def test_api(case: Case[Any], world: World) -> None:
    aim(case, world)
    # The admin's token where the case carries one: on every bearerAuth operation, unless the
    # case is about a missing Authorization header.
    auth = {"Authorization": f"Bearer {world.token}"} if "Authorization" in case.headers else {}
    response = case.call_and_validate(base_url=world.base, headers=auth)
    world.answers[case.operation.label][response.status_code] += 1


def test_the_ids_reached_real_objects(world: World) -> None:
    """Each operation whose path names objects got an answer only a real one gets: a success,
    a 403 or 409 about the object, a socket's 410, or the 400 a socket answers a plain GET
    with once it has found the session and checked the token."""
    missed = []
    for item in code_document()["paths"]:
        if "{" not in item or "{key}" in item:  # a file's key is signed; none is made here
            continue
        for method in ("get", "put", "post", "patch", "delete"):
            label = f"{method.upper()} {item}"
            answers = world.answers.get(label)
            if answers is None:
                continue  # not run (deselected)
            socket = item.endswith(("/doc", "/events"))
            found = [s for s in answers if 200 <= s < 300 or s in (403, 409, 410)]
            found += [s for s in answers if socket and s == 400]
            if not found:
                missed.append(f"{label}: {dict(answers)}")
    assert missed == []
