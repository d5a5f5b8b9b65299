"""Every route of the application, and what every caller must get from it.

A route that needs a token is a ``Route``: how to call it on one tenant's things (``call``),
what each caller of that tenant gets (``roles``), and what each caller of the other tenant
gets when the same call names this tenant's things (``cross``), plus further ways of naming
another tenant's things in the body or query (``attacks``). Routes that take no token are in
``PUBLIC`` with where they are attacked. ``test_every_route_is_in_the_catalog`` fails when
the router has a route this file does not list.

Callers: ``admin``, ``owner`` (the user who owns the things called on, and hosts the dojo),
``user`` (another user), ``viewer``; on a dojo session's routes also ``member`` and
``watcher`` (who joined it as participant and as observer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.helpers import PASSWORD, Account, unique
from tests.poc_helpers import poc_body
from tests.security.world import TEMPLATE, THIS_YEAR, Outcome, Side, no, ok


@dataclass(frozen=True)
class Call:
    """One request's path, query and JSON body (None: no body)."""

    path: str
    body: Any = None
    params: dict[str, str] | None = None


Build = Callable[[Side, Account], Awaitable[Call]]


@dataclass(frozen=True)
class Attack:
    """Another way of naming the other tenant's things, with what each caller gets."""

    label: str
    call: Build
    cross: dict[str, Outcome]


@dataclass(frozen=True)
class Route:
    """A route that needs a token, as the router names it, and what each caller gets."""

    method: str
    path: str
    call: Build
    roles: dict[str, Outcome]
    cross: dict[str, Outcome]
    attacks: tuple[Attack, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.path


CALLERS = ("admin", "owner", "user", "viewer")
IN_DOJO = (*CALLERS, "member", "watcher")

FORBIDDEN = no(403, "forbidden")
NOT_FOUND = no(404, "not_found")
NOT_HOST = no(403, "not_host")
NOT_PARTICIPANT = no(403, "not_participant")
TENANT_MISMATCH = no(403, "tenant_mismatch")
USER_MISMATCH = no(403, "user_mismatch")


def each(
    default: Outcome, *, callers: tuple[str, ...] = CALLERS, **cells: Outcome
) -> dict[str, Outcome]:
    """An outcome for every caller: ``default``, unless the caller is named."""
    assert set(cells) <= set(callers), set(cells) - set(callers)
    return {name: cells.get(name, default) for name in callers}


def call(path: str, body: Any = None, **params: str) -> Build:
    """A call built by filling ``{w.…}`` (the side whose things are named) and ``{me.…}``
    (the caller) into its path, body and query."""

    async def build(w: Side, me: Account) -> Call:
        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.format(w=w, me=me)
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value

        return Call(fill(path), fill(body), fill(params) or None)

    return build


# --- calls that need a thing of their own ------------------------------------------------------


async def register_body(w: Side, me: Account) -> Call:
    name = unique("u")
    return Call(
        "/v1/users/register",
        {
            "username": name,
            "password": PASSWORD,
            "email": f"{name}@{w.admin.domain}",
            "fullName": "New Person",
            "tenantId": w.tenant_id,
            "role": "user",
        },
    )


async def new_poc(w: Side, me: Account) -> Call:
    return Call("/v1/pocs", poc_body(me, tenantId=w.tenant_id))


async def delete_poc(w: Side, me: Account) -> Call:
    return Call(f"/v1/pocs/{await w.fresh_poc()}")


async def add_favorite(w: Side, me: Account) -> Call:
    return Call("/v1/favorites", {"pocId": await w.fresh_poc(), "userId": me.user_id})


async def remove_favorite(w: Side, me: Account) -> Call:
    return Call(f"/v1/favorites/{await w.fresh_favorite()}")


async def join_dojo(w: Side, me: Account) -> Call:
    dojo = await w.fresh_dojo()
    return Call(f"/v1/dojos/sessions/{dojo.session_id}/join", {"joinCode": dojo.join_code})


async def end_dojo(w: Side, me: Account) -> Call:
    return Call(f"/v1/dojos/sessions/{(await w.fresh_dojo()).session_id}/end")


async def record_dojo(w: Side, me: Account) -> Call:
    session_id = (await w.fresh_dojo()).session_id
    return Call(f"/v1/dojos/sessions/{session_id}/recording", {"action": "start"})


async def put_template(w: Side, me: Account) -> Call:
    template = await w.fresh_template()
    return Call(f"/v1/notifications/templates/{template}", {"subject": "Hello", **TEMPLATE})


async def delete_template(w: Side, me: Account) -> Call:
    return Call(f"/v1/notifications/templates/{await w.fresh_template()}")


REPORT = {
    "reportType": "summary",
    "format": "json",
    "dateRange": {"startDate": f"{THIS_YEAR}-01-01", "endDate": f"{THIS_YEAR}-12-31"},
}
EMAIL = {"recipients": ["to@example.com"], "templateId": "{w.template_id}", "data": {"name": "A"}}
SESSION = "/v1/dojos/sessions/{w.dojo.session_id}"

ROUTES: tuple[Route, ...] = (
    # --- users and tenants ---
    Route(
        "POST",
        "/v1/users/register",
        register_body,
        roles=each(FORBIDDEN, admin=ok(201)),
        cross=each(FORBIDDEN, admin=TENANT_MISMATCH),
    ),
    Route("GET", "/v1/users/me", call("/v1/users/me"), roles=each(ok()), cross=each(ok())),
    Route(
        "GET",
        "/v1/users",
        call("/v1/users", limit="100"),
        roles=each(FORBIDDEN, admin=ok()),
        cross=each(FORBIDDEN, admin=ok()),
    ),
    Route(
        "GET",
        "/v1/users/{userId}",
        call("/v1/users/{w.owner.user_id}"),
        roles=each(ok()),
        cross=each(NOT_FOUND),
    ),
    Route(
        "PATCH",
        "/v1/users/{userId}",
        call("/v1/users/{w.owner.user_id}", {"fullName": "Renamed"}),
        roles=each(FORBIDDEN, admin=ok(), owner=ok()),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/tenants/{tenantId}",
        call("/v1/tenants/{w.tenant_id}"),
        roles=each(ok()),
        cross=each(NOT_FOUND),
    ),
    # --- POCs ---
    Route(
        "POST",
        "/v1/pocs",
        new_poc,
        roles=each(ok(201), viewer=FORBIDDEN),
        cross=each(TENANT_MISMATCH, viewer=FORBIDDEN),
    ),
    Route(
        "GET",
        "/v1/pocs/search",
        call("/v1/pocs/search", q="{w.poc_title}"),
        roles=each(ok()),
        cross=each(ok()),
        attacks=(
            Attack("by name", call("/v1/pocs/search", name="{w.poc_title}"), each(ok())),
            Attack("by tag", call("/v1/pocs/search", tags="{w.tag}"), each(ok())),
            Attack("by owner", call("/v1/pocs/search", owner="{w.owner.user_id}"), each(ok())),
            Attack(
                "tenantId",
                call("/v1/pocs/search", tenantId="{w.tenant_id}"),
                each(TENANT_MISMATCH),
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/pocs/suggest",
        call("/v1/pocs/suggest", prefix="{w.poc_title:.8}"),
        roles=each(ok()),
        cross=each(ok()),
        attacks=(Attack("a tag", call("/v1/pocs/suggest", prefix="{w.tag:.6}"), each(ok())),),
    ),
    Route("GET", "/v1/tags/popular", call("/v1/tags/popular"), roles=each(ok()), cross=each(ok())),
    Route("GET", "/v1/pocs/mine", call("/v1/pocs/mine"), roles=each(ok()), cross=each(ok())),
    Route(
        "GET",
        "/v1/users/{userId}/pocs",
        call("/v1/users/{w.owner.user_id}/pocs"),
        roles=each(ok()),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/pocs/{pocId}",
        call("/v1/pocs/{w.poc_id}"),
        roles=each(ok()),
        cross=each(NOT_FOUND),
    ),
    Route(
        "PUT",
        "/v1/pocs/{pocId}",
        call("/v1/pocs/{w.poc_id}", {"description": "Changed"}),
        roles=each(FORBIDDEN, admin=ok(), owner=ok()),
        cross=each(NOT_FOUND, viewer=FORBIDDEN),
    ),
    Route(
        "DELETE",
        "/v1/pocs/{pocId}",
        delete_poc,
        roles=each(FORBIDDEN, admin=ok(), owner=ok()),
        cross=each(NOT_FOUND, viewer=FORBIDDEN),
    ),
    # --- favorites ---
    Route(
        "POST",
        "/v1/favorites",
        add_favorite,
        roles=each(ok(201)),
        cross=each(NOT_FOUND),
        attacks=(
            Attack(
                "userId",
                call("/v1/favorites", {"pocId": "{w.poc_id}", "userId": "{w.owner.user_id}"}),
                each(USER_MISMATCH),
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/favorites/user/{userId}",
        call("/v1/favorites/user/{w.owner.user_id}"),
        roles=each(FORBIDDEN, admin=ok(), owner=ok()),
        cross=each(FORBIDDEN, admin=NOT_FOUND),
    ),
    Route(
        "DELETE",
        "/v1/favorites/{favoriteId}",
        remove_favorite,
        roles=each(FORBIDDEN, owner=ok()),
        cross=each(NOT_FOUND),
    ),
    # --- dojo sessions ---
    Route(
        "POST",
        "/v1/dojos/sessions",
        call("/v1/dojos/sessions", {"title": "Kata", "pocId": "{w.poc_id}"}),
        roles=each(ok(201), viewer=FORBIDDEN),
        cross=each(NOT_FOUND, viewer=FORBIDDEN),
        attacks=(
            Attack(
                "tenantId",
                call(
                    "/v1/dojos/sessions",
                    {"title": "Kata", "pocId": "{w.poc_id}", "tenantId": "{w.tenant_id}"},
                ),
                each(TENANT_MISMATCH, viewer=FORBIDDEN),
            ),
            Attack(
                "hostUserId",
                call(
                    "/v1/dojos/sessions",
                    {"title": "Kata", "pocId": "{w.poc_id}", "hostUserId": "{w.owner.user_id}"},
                ),
                each(USER_MISMATCH, viewer=FORBIDDEN),
            ),
        ),
    ),
    Route(
        "POST",
        "/v1/dojos/sessions/{sessionId}/join",
        join_dojo,
        roles=each(ok(), callers=IN_DOJO),
        cross=each(NOT_FOUND),
        attacks=(
            Attack(
                "userId",
                call(
                    SESSION + "/join",
                    {"joinCode": "{w.dojo.join_code}", "userId": "{w.owner.user_id}"},
                ),
                each(USER_MISMATCH),
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions",
        call("/v1/dojos/sessions", limit="100"),
        roles=each(ok()),
        cross=each(ok()),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}",
        call(SESSION),
        roles=each(
            ok(),
            callers=IN_DOJO,
            **dict.fromkeys(("owner", "member", "watcher"), ok(shows_join_code=True)),
        ),
        cross=each(NOT_FOUND),
    ),
    Route(
        "POST",
        "/v1/dojos/sessions/{sessionId}/start",
        call(SESSION + "/start"),
        roles=each(NOT_HOST, callers=IN_DOJO, owner=ok(), viewer=FORBIDDEN),
        cross=each(NOT_FOUND, viewer=FORBIDDEN),
    ),
    Route(
        "POST",
        "/v1/dojos/sessions/{sessionId}/end",
        end_dojo,
        roles=each(NOT_HOST, callers=IN_DOJO, owner=ok(), viewer=FORBIDDEN),
        cross=each(NOT_FOUND, viewer=FORBIDDEN),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}/ice",
        call(SESSION + "/ice"),
        # Only who is in the dojo: an admin who is not gets no TURN credentials either.
        roles=each(
            ok(),
            callers=IN_DOJO,
            admin=NOT_PARTICIPANT,
            user=NOT_PARTICIPANT,
            viewer=NOT_PARTICIPANT,
        ),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}/chat",
        call(SESSION + "/chat"),
        roles=each(ok(), callers=IN_DOJO, user=NOT_PARTICIPANT, viewer=NOT_PARTICIPANT),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}/snapshots",
        call(SESSION + "/snapshots"),
        roles=each(ok(), callers=IN_DOJO, user=NOT_PARTICIPANT, viewer=NOT_PARTICIPANT),
        cross=each(NOT_FOUND),
    ),
    Route(
        "POST",
        "/v1/dojos/sessions/{sessionId}/recording",
        record_dojo,
        roles=each(NOT_HOST, callers=IN_DOJO, owner=ok(), viewer=FORBIDDEN),
        cross=each(NOT_FOUND, viewer=FORBIDDEN),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}/recordings",
        call(SESSION + "/recordings"),
        roles=each(ok(), callers=IN_DOJO, user=NOT_PARTICIPANT, viewer=NOT_PARTICIPANT),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}/recordings/{recordingId}",
        call(SESSION + "/recordings/00000000-0000-4000-8000-000000000000"),
        roles=each(NOT_FOUND, callers=IN_DOJO, user=NOT_PARTICIPANT, viewer=NOT_PARTICIPANT),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}/recordings/{recordingId}/code",
        call(SESSION + "/recordings/00000000-0000-4000-8000-000000000000/code?at=1"),
        roles=each(NOT_FOUND, callers=IN_DOJO, user=NOT_PARTICIPANT, viewer=NOT_PARTICIPANT),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/dojos/sessions/{sessionId}/recordings/{recordingId}/timeline",
        call(SESSION + "/recordings/00000000-0000-4000-8000-000000000000/timeline"),
        roles=each(NOT_FOUND, callers=IN_DOJO, user=NOT_PARTICIPANT, viewer=NOT_PARTICIPANT),
        cross=each(NOT_FOUND),
    ),
    Route(
        "POST",
        "/v1/dojos/sessions/{sessionId}/recordings/{recordingId}/video",
        call(SESSION + "/recordings/00000000-0000-4000-8000-000000000000/video"),
        roles=each(NOT_FOUND, callers=IN_DOJO, user=NOT_PARTICIPANT, viewer=FORBIDDEN),
        cross=each(NOT_FOUND, viewer=FORBIDDEN),
    ),
    # --- reports and videos ---
    Route(
        "POST",
        "/v1/reports/generate",
        call("/v1/reports/generate", {**REPORT, "tenantId": "{w.tenant_id}"}),
        roles=each(ok(202)),
        cross=each(TENANT_MISMATCH),
    ),
    Route(
        "GET",
        "/v1/reports/{reportId}/status",
        call("/v1/reports/{w.report_id}/status"),
        roles=each(NOT_FOUND, admin=ok(), owner=ok()),
        cross=each(NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/reports/{reportId}/download",
        call("/v1/reports/{w.report_id}/download"),
        roles=each(NOT_FOUND, admin=no(409, "not_ready"), owner=no(409, "not_ready")),
        cross=each(NOT_FOUND),
    ),
    Route("GET", "/v1/reports", call("/v1/reports"), roles=each(ok()), cross=each(ok())),
    Route(
        "POST",
        "/v1/videos/generate-yearly",
        call("/v1/videos/generate-yearly", {"userId": "{w.owner.user_id}", "year": THIS_YEAR}),
        roles=each(ok(202), user=USER_MISMATCH, viewer=FORBIDDEN),
        cross=each(USER_MISMATCH, admin=NOT_FOUND, viewer=FORBIDDEN),
        attacks=(
            Attack(
                "tenantId",
                call(
                    "/v1/videos/generate-yearly",
                    {"userId": "{me.user_id}", "year": THIS_YEAR, "tenantId": "{w.tenant_id}"},
                ),
                each(TENANT_MISMATCH, viewer=FORBIDDEN),
            ),
        ),
    ),
    Route(
        "GET",
        "/v1/videos/{videoId}/status",
        call("/v1/videos/{w.video_id}/status"),
        roles=each(NOT_FOUND, admin=ok(), owner=ok()),
        cross=each(NOT_FOUND),
    ),
    Route("GET", "/v1/videos", call("/v1/videos"), roles=each(ok()), cross=each(ok())),
    # --- notifications ---
    Route(
        "POST",
        "/v1/notifications/email",
        call("/v1/notifications/email", EMAIL),
        roles=each(ok(202), viewer=FORBIDDEN),
        cross=each(no(422, "unknown_template"), viewer=FORBIDDEN),
        attacks=(
            Attack(
                "tenantId",
                call("/v1/notifications/email", {**EMAIL, "tenantId": "{w.tenant_id}"}),
                each(TENANT_MISMATCH, viewer=FORBIDDEN),
            ),
        ),
    ),
    Route(
        "PUT",
        "/v1/notifications/templates/{templateId}",
        put_template,
        roles=each(FORBIDDEN, admin=ok()),
        # The other tenant's template name is free here: the admin makes one of its own.
        cross=each(FORBIDDEN, admin=ok(201)),
    ),
    Route(
        "GET",
        "/v1/notifications/templates",
        call("/v1/notifications/templates"),
        roles=each(ok()),
        cross=each(ok()),
    ),
    Route(
        "GET",
        "/v1/notifications/templates/{templateId}",
        call("/v1/notifications/templates/{w.template_id}"),
        roles=each(ok()),
        cross=each(NOT_FOUND),
    ),
    Route(
        "DELETE",
        "/v1/notifications/templates/{templateId}",
        delete_template,
        roles=each(FORBIDDEN, admin=ok(204)),
        cross=each(FORBIDDEN, admin=NOT_FOUND),
    ),
    Route(
        "GET",
        "/v1/notifications/{notificationId}",
        call("/v1/notifications/{w.notification_id}"),
        roles=each(NOT_FOUND, admin=ok(), owner=ok()),
        cross=each(NOT_FOUND),
    ),
)

# Routes that take no token, and where they are attacked.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "test_routes: answers anyone, names no tenant",
    ("GET", "/readyz"): "test_routes: answers anyone, names no tenant",
    ("GET", "/metrics"): "test_routes: answers anyone, names no tenant",
    ("GET", "/v1/openapi.json"): "test_routes: answers anyone, names no tenant",
    ("GET", "/v1/languages"): "test_routes: answers anyone, names no tenant",
    ("GET", "/v1/files/{key}"): "tests/jobs/test_reports_api: tampered, expired, moved links",
    ("POST", "/v1/tenants"): "test_routes: a signup cannot take another tenant's domain",
    ("POST", "/v1/auth/login"): "test_auth_attacks",
    ("POST", "/v1/auth/refresh"): "test_auth_attacks; test_tokens (reused refresh tokens)",
    ("POST", "/v1/auth/logout"): "test_auth_attacks",
    ("GET", "/v1/dojos/sessions/{sessionId}/doc"): "test_sockets",
    ("GET", "/v1/dojos/sessions/{sessionId}/events"): "test_sockets",
}
