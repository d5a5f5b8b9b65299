"""The world the attack suite runs in: two tenants, each with one person of every role and one
of every thing they own, the strings that must never cross from one tenant to the other, and
the rows of both tenants read straight from the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from tests.dojo_helpers import Client, Dojo, create_dojo, join
from tests.helpers import Account, error_of, login, register, signup, unique
from tests.poc_helpers import add_favorite, create_poc

THIS_YEAR = datetime.now(UTC).year
# How every stored password begins.
PASSWORD_HASH = "$argon2"
TEMPLATE = {"html": "<p>Hi {{ name }}</p>", "text": "Hi {{ name }}"}


@dataclass(frozen=True)
class Outcome:
    """What a request must get: a success status, or a refusal with its error code."""

    status: int
    code: str | None = None
    shows_join_code: bool = False  # the answer may name the caller's own dojo's join code

    @property
    def refused(self) -> bool:
        return self.code is not None

    def __str__(self) -> str:
        return f"{self.status} {self.code}" if self.code else str(self.status)


def ok(status: int = 200, *, shows_join_code: bool = False) -> Outcome:
    return Outcome(status, shows_join_code=shows_join_code)


def no(status: int, code: str) -> Outcome:
    return Outcome(status, code)


@dataclass
class Side:
    """One tenant: its admin; ``owner``, a user who owns one of each thing below and hosts the
    dojo; ``user``, another user, in no dojo; a viewer; ``member`` and ``watcher``, users who
    joined the dojo as participant and as observer."""

    client: Client
    admin: Account
    owner: Account
    user: Account
    viewer: Account
    member: Account
    watcher: Account
    poc_id: str
    poc_title: str
    tag: str
    favorite_id: str
    dojo: Dojo
    report_id: str
    video_id: str
    notification_id: str
    template_id: str
    # What no answer may hold unless the request named it: of the other tenant, anything
    # (``markers``); of any tenant, what is for one person's eyes (``secrets``).
    markers: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)

    @property
    def tenant_id(self) -> str:
        return self.admin.tenant_id

    def caller(self, name: str) -> Account:
        account: Account = getattr(self, name)
        return account

    async def fresh_poc(self) -> str:
        """A new POC of ``owner``."""
        poc = await create_poc(self.client, self.owner, tags=[self.tag])
        self.markers |= {poc["pocId"], poc["title"]}
        poc_id: str = poc["pocId"]
        return poc_id

    async def fresh_favorite(self) -> str:
        """A new favorite of ``owner``, on a new POC."""
        poc_id = await self.fresh_poc()
        favorite_id: str = (await add_favorite(self.client, self.owner, poc_id))["favoriteId"]
        self.markers.add(favorite_id)
        return favorite_id

    async def fresh_dojo(self) -> Dojo:
        """A new session hosted by ``owner``."""
        title = unique("Kata ")
        dojo = await create_dojo(self.client, self.owner, title=title)
        self.markers |= {dojo.session_id, dojo.join_code, title}
        self.secrets.add(dojo.join_code)
        return dojo

    async def fresh_template(self) -> str:
        """A new email template of the tenant."""
        template_id, subject = unique("tpl"), f"Subject {unique()}"
        await put_template(self.client, self.admin, template_id, subject)
        self.markers.add(subject)
        return template_id

    def leaks(self, text: str, asked: str, *, secrets_only: bool = False) -> list[str]:
        """This tenant's markers (or only its secrets) found in ``text`` that the request
        itself did not name."""
        found = self.secrets if secrets_only else self.markers | self.secrets
        return sorted(m for m in found if m in text and m not in asked)


async def put_template(client: Client, admin: Account, template_id: str, subject: str) -> None:
    resp = await client.put(
        f"/v1/notifications/templates/{template_id}",
        headers=admin.auth,
        json={"subject": subject, **TEMPLATE},
    )
    assert resp.status == 201, await resp.text()


async def _accepted(client: Client, account: Account, path: str, body: Any, key: str) -> str:
    resp = await client.post(path, headers=account.auth, json=body)
    assert resp.status == 202, await resp.text()
    value: str = (await resp.json())[key]
    return value


async def make_side(client: Client) -> Side:
    """A tenant with everyone and everything in it."""
    admin = await signup(client)
    owner, user, member, watcher = [await register(client, admin) for _ in range(4)]
    viewer = await register(client, admin, role="viewer")
    tag, title = unique("tag"), f"POC {unique()}"
    poc_id: str = (await create_poc(client, owner, title=title, tags=[tag]))["pocId"]
    favorite_id: str = (await add_favorite(client, owner, poc_id))["favoriteId"]
    dojo_title = unique("Kata ")
    dojo = await create_dojo(client, owner, title=dojo_title)
    await join(client, dojo, member)
    await join(client, dojo, watcher, role="observer")
    report_id = await _accepted(
        client,
        owner,
        "/v1/reports/generate",
        {
            "reportType": "summary",
            "format": "json",
            "dateRange": {"startDate": f"{THIS_YEAR}-01-01", "endDate": f"{THIS_YEAR}-12-31"},
        },
        "reportId",
    )
    video_id = await _accepted(
        client,
        owner,
        "/v1/videos/generate-yearly",
        {"userId": owner.user_id, "year": THIS_YEAR},
        "videoId",
    )
    template_id, subject = unique("tpl"), f"Subject {unique()}"
    await put_template(client, admin, template_id, subject)
    notification_id = await _accepted(
        client,
        owner,
        "/v1/notifications/email",
        {"recipients": [f"to@{admin.domain}"], "templateId": template_id, "data": {"name": "A"}},
        "notificationId",
    )
    people = (admin, owner, user, viewer, member, watcher)
    markers = {admin.tenant_id, admin.domain, poc_id, title, tag, favorite_id, subject, dojo_title}
    markers |= {p.user_id for p in people} | {p.username for p in people}
    markers |= {dojo.session_id, dojo.join_code, report_id, video_id, notification_id}
    secrets = {dojo.join_code, PASSWORD_HASH}
    secrets |= {p.token for p in people} | {p.refresh_token for p in people}
    return Side(
        client=client,
        admin=admin,
        owner=owner,
        user=user,
        viewer=viewer,
        member=member,
        watcher=watcher,
        poc_id=poc_id,
        poc_title=title,
        tag=tag,
        favorite_id=favorite_id,
        dojo=dojo,
        report_id=report_id,
        video_id=video_id,
        notification_id=notification_id,
        template_id=template_id,
        markers=markers,
        secrets=secrets,
    )


# The ways a login session ends before it expires.
ENDINGS = ("logout", "a reused refresh token", "a password change", "deactivation")


async def end_login(client: Client, admin: Account, account: Account, how: str) -> None:
    """End ``account``'s current login session in one of the ``ENDINGS`` (``admin``, of its
    tenant, deactivates)."""

    async def answered(method: str, path: str, body: object, headers: dict[str, str]) -> int:
        resp = await client.request(method, path, json=body, headers=headers)
        return resp.status

    if how == "logout":
        body = {"userId": account.user_id, "token": account.token}
        assert await answered("POST", "/v1/auth/logout", body, {}) == 200
    elif how == "a reused refresh token":
        body = {"userId": account.user_id, "refreshToken": account.refresh_token}
        assert await answered("POST", "/v1/auth/refresh", body, {}) == 200
        assert await answered("POST", "/v1/auth/refresh", body, {}) == 401
    elif how == "a password change":
        # Made in another login session, which it leaves open.
        other = replace(account)
        await login(client, other)
        change = {"password": "N3w!Passw0rd", "currentPassword": account.password}
        path = f"/v1/users/{account.user_id}"
        assert await answered("PATCH", path, change, other.auth) == 200
    else:
        path = f"/v1/users/{account.user_id}"
        assert await answered("PATCH", path, {"isActive": False}, admin.auth) == 200


@dataclass
class World:
    """Tenant ``a``, where the callers live, and tenant ``b``, whose things they go after."""

    a: Side
    b: Side


async def make_world(client: Client) -> World:
    return World(a=await make_side(client), b=await make_side(client))


class Rows:
    """The rows of some tenants as the database holds them, read as its owner (past RLS)."""

    # Counters that change on their own: views are buffered in Redis and flushed later.
    VOLATILE = ("view_count",)

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._sql = ""

    async def _statement(self) -> str:
        """One statement reading every table with a tenant column (partitions through their
        parent), each row as JSON."""
        tables = await self._conn.fetch(
            """SELECT c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                 AND NOT c.relispartition AND NOT a.attisdropped
               ORDER BY 1"""
        )
        drop = " - ".join(f"'{c}'" for c in self.VOLATILE)
        parts = ["SELECT 'tenants', to_jsonb(t)::text FROM tenants t WHERE id = ANY($1::uuid[])"]
        # Table names come from the catalog, not from input.
        parts += [
            f"SELECT '{name}', (to_jsonb(t) - {drop})::text FROM {name} t "  # noqa: S608
            "WHERE tenant_id = ANY($1::uuid[])"
            for name in (r["relname"] for r in tables)
        ]
        return " UNION ALL ".join(parts)

    async def of(self, tenant_ids: Iterable[str]) -> dict[str, set[str]]:
        """Every row of the tenants, table by table."""
        if not self._sql:
            self._sql = await self._statement()
        found: dict[str, set[str]] = {}
        for table, row in await self._conn.fetch(self._sql, list(tenant_ids)):
            found.setdefault(table, set()).add(row)
        return found


def changes(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    """The tables whose rows differ, with how many rows went and came."""
    out = []
    for table in sorted(before.keys() | after.keys()):
        gone = before.get(table, set()) - after.get(table, set())
        came = after.get(table, set()) - before.get(table, set())
        if gone or came:
            out.append(f"{table}: -{len(gone)} +{len(came)}")
    return out


async def refusal_of(resp: Any) -> str:
    """The refusal's error code, checking the one error shape and that a refusal carries no
    details beyond its code and message (validation errors aside)."""
    error = await error_of(resp)
    if resp.status in (401, 403, 404):
        assert error["details"] is None, error
    if resp.status == 401:
        assert resp.headers.get("WWW-Authenticate") == "Bearer", dict(resp.headers)
    return str(error["code"])


def asked(path: str, params: Any, body: Any) -> str:
    """Everything a request says, to tell an echo of its own input from a leak."""
    return f"{path} {json.dumps(params)} {json.dumps(body)}"
