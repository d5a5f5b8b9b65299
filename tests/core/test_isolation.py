"""Tenant isolation: through the API, and in the database itself under the application role.

The raw-SQL tests connect as ``pocdojo_app`` exactly as the application does, and check what
row-level security and the grants let it see and do. The owner connection (which bypasses
RLS) is used only to confirm that the other tenant really has rows to hide.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from pocdojo.core import appkeys
from pocdojo.core.db import open_pool, tenant_tx
from tests.conftest import Engines
from tests.dojo_helpers import create_dojo, create_poc, join
from tests.helpers import PASSWORD, Account, error_of, register, signup, unique

Client: TypeAlias = TestClient[Any, Any]

APP_ROLE = "pocdojo_app"

# Each tenant-owned table and the column naming its tenant.
TENANT_COLUMN = {
    "tenants": "id",
    "users": "tenant_id",
    "auth_sessions": "tenant_id",
    "refresh_tokens": "tenant_id",
    "audit_log": "tenant_id",
}


@dataclass
class Tenant:
    """A tenant with an admin and a logged-in user (so every table has rows of it)."""

    admin: Account
    user: Account

    @property
    def id(self) -> str:
        return self.admin.tenant_id


async def make_tenant(client: Client) -> Tenant:
    admin = await signup(client)
    return Tenant(admin=admin, user=await register(client, admin))


async def snapshot(client: Client, tenant: Tenant) -> dict[str, Any]:
    """Everything of ``tenant`` its own admin can read: the tenant and each user."""
    auth = tenant.admin.auth
    tenant_resp = await client.get(f"/v1/tenants/{tenant.id}", headers=auth)
    users_resp = await client.get("/v1/users?limit=100", headers=auth)
    assert tenant_resp.status == users_resp.status == 200
    return {"tenant": await tenant_resp.json(), "users": await users_resp.json()}


# --- through the API -----------------------------------------------------------------------------


async def test_a_user_of_one_tenant_cannot_read_another_tenant(client: Client) -> None:
    a, b = await make_tenant(client), await make_tenant(client)

    for caller in (a.admin, a.user):
        for path in (
            f"/v1/tenants/{b.id}",
            f"/v1/users/{b.admin.user_id}",
            f"/v1/users/{b.user.user_id}",
        ):
            resp = await client.get(path, headers=caller.auth)
            assert resp.status == 404, (path, await resp.text())
            body = await resp.text()
            assert b.admin.username not in body
            assert b.admin.domain not in body


async def test_a_tenant_listing_never_shows_another_tenants_users(client: Client) -> None:
    a, b = await make_tenant(client), await make_tenant(client)

    resp = await client.get("/v1/users?limit=100", headers=a.admin.auth)

    data = await resp.json()
    ids = {u["userId"] for u in data["users"]}
    assert ids == {a.admin.user_id, a.user.user_id}
    assert data["totalCount"] == 2
    assert not ids & {b.admin.user_id, b.user.user_id}


@pytest.mark.parametrize(
    "change",
    [
        {"fullName": "Owned by A"},
        {"email": "taken-over@a.example"},
        {"role": "viewer"},
        {"isActive": False},
        {"password": "An0ther!Secret", "currentPassword": PASSWORD},
    ],
    ids=["fullName", "email", "role", "isActive", "password"],
)
async def test_a_user_of_one_tenant_cannot_change_another_tenants_users(
    client: Client, change: dict[str, Any]
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    before = await snapshot(client, b)

    for caller in (a.admin, a.user):
        for target in (b.admin, b.user):
            resp = await client.patch(
                f"/v1/users/{target.user_id}", headers=caller.auth, json=change
            )
            assert resp.status == 404, await resp.text()
            assert (await error_of(resp))["code"] == "not_found"

    assert await snapshot(client, b) == before
    for account in (b.admin, b.user):
        assert (await client.get("/v1/users/me", headers=account.auth)).status == 200


async def test_an_admin_cannot_register_a_user_into_another_tenant(client: Client) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    before = await snapshot(client, b)
    username = unique("intruder")

    resp = await client.post(
        "/v1/users/register",
        headers=a.admin.auth,
        json={
            "username": username,
            "password": PASSWORD,
            "email": f"{username}@{b.admin.domain}",
            "fullName": "Intruder",
            "tenantId": b.id,
            "role": "admin",
        },
    )

    assert resp.status == 403, await resp.text()
    assert (await error_of(resp))["code"] == "tenant_mismatch"
    assert await snapshot(client, b) == before
    login = await client.post(
        "/v1/auth/login", json={"username": username, "password": PASSWORD, "tenantId": b.id}
    )
    assert login.status == 401


async def test_credentials_of_one_tenant_do_not_log_in_to_another(
    client: Client,
) -> None:
    a = await make_tenant(client)
    b = await make_tenant(client)

    resp = await client.post(
        "/v1/auth/login",
        json={"username": a.user.username, "password": PASSWORD, "tenantId": b.id},
    )

    assert resp.status == 401, await resp.text()


# --- in the database, as the application role ---------------------------------------------------


@pytest.fixture
async def owner(engines: Engines) -> AsyncIterator[Any]:
    """A connection as the schema owner, which bypasses row-level security."""
    conn = await asyncpg.connect(engines.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def app_conn(engines: Engines) -> AsyncIterator[Any]:
    """A connection as the application role, made the way the application makes its pool."""
    if engines.database_app_url:
        conn = await asyncpg.connect(engines.database_app_url)
    else:
        conn = await asyncpg.connect(engines.database_url, server_settings={"role": APP_ROLE})
    try:
        yield conn
    finally:
        await conn.close()


async def set_tenant(conn: Any, tenant_id: str) -> None:
    await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)


async def execute_as(conn: Any, tenant_id: str, sql: str, *args: Any) -> str:
    """Run one statement in a transaction scoped to ``tenant_id``; returns its status."""
    async with conn.transaction():
        await set_tenant(conn, tenant_id)
        status: str = await conn.execute(sql, *args)
    return status


async def tenant_ids_in(conn: Any, table: str) -> list[uuid.UUID]:
    column = TENANT_COLUMN[table]
    rows = await conn.fetch(f"SELECT {column} AS tenant FROM {table}")  # noqa: S608
    return [r["tenant"] for r in rows]


async def assert_has_rows_everywhere(owner: Any, tenant: Tenant) -> None:
    """``tenant`` really has rows in every table (seen by the owner, past RLS)."""
    for table, column in TENANT_COLUMN.items():
        count = await owner.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} = $1",  # noqa: S608
            uuid.UUID(tenant.id),
        )
        assert count > 0, f"{table} has no rows of {tenant.id}"


async def test_the_test_connection_runs_as_the_application_role(app_conn: Any) -> None:
    assert await app_conn.fetchval("SELECT current_user") == APP_ROLE


async def test_the_application_pool_runs_as_the_application_role(client: Client) -> None:
    pool = client.app[appkeys.db_pool_key]

    async with pool.acquire() as conn:
        role = await conn.fetchval("SELECT current_user")

    assert role == APP_ROLE


@pytest.mark.parametrize("table", sorted(TENANT_COLUMN))
async def test_app_role_sees_only_the_tenant_it_set(
    client: Client, owner: Any, app_conn: Any, table: str
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    await assert_has_rows_everywhere(owner, a)
    await assert_has_rows_everywhere(owner, b)

    async with app_conn.transaction():
        await set_tenant(app_conn, a.id)
        seen = await tenant_ids_in(app_conn, table)

    assert seen, f"tenant A's own rows in {table} are hidden"
    assert set(seen) == {uuid.UUID(a.id)}


async def test_app_role_cannot_find_another_tenants_rows_by_id(
    client: Client, owner: Any, app_conn: Any
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    b_id = uuid.UUID(b.id)
    b_users = [uuid.UUID(b.admin.user_id), uuid.UUID(b.user.user_id)]
    b_sessions = [
        r["id"]
        for r in await owner.fetch("SELECT id FROM auth_sessions WHERE tenant_id = $1", b_id)
    ]
    b_audit = [
        r["id"] for r in await owner.fetch("SELECT id FROM audit_log WHERE tenant_id = $1", b_id)
    ]
    assert b_sessions
    assert b_audit

    async with app_conn.transaction():
        await set_tenant(app_conn, a.id)
        found = {
            "tenants": await app_conn.fetchval("SELECT count(*) FROM tenants WHERE id = $1", b_id),
            "users": await app_conn.fetchval(
                "SELECT count(*) FROM users WHERE id = ANY($1::uuid[])", b_users
            ),
            "auth_sessions": await app_conn.fetchval(
                "SELECT count(*) FROM auth_sessions WHERE id = ANY($1::uuid[])", b_sessions
            ),
            "refresh_tokens": await app_conn.fetchval(
                "SELECT count(*) FROM refresh_tokens WHERE session_id = ANY($1::uuid[])",
                b_sessions,
            ),
            "audit_log": await app_conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE id = ANY($1::uuid[])", b_audit
            ),
        }

    assert found == dict.fromkeys(TENANT_COLUMN, 0)


@pytest.mark.parametrize("table", sorted(TENANT_COLUMN))
async def test_app_role_without_a_tenant_sees_no_rows(
    client: Client, owner: Any, app_conn: Any, table: str
) -> None:
    a = await make_tenant(client)
    await assert_has_rows_everywhere(owner, a)

    async with app_conn.transaction():
        count = await app_conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608

    assert count == 0


@pytest.mark.parametrize("table", sorted(TENANT_COLUMN))
async def test_the_tenant_setting_ends_with_its_transaction(
    client: Client, owner: Any, app_conn: Any, table: str
) -> None:
    a = await make_tenant(client)
    await assert_has_rows_everywhere(owner, a)
    async with app_conn.transaction():
        await set_tenant(app_conn, a.id)
        assert await app_conn.fetchval(f"SELECT count(*) FROM {table}") > 0  # noqa: S608

    async with app_conn.transaction():
        count = await app_conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608

    assert count == 0


async def test_app_role_cannot_insert_rows_of_another_tenant(
    client: Client, owner: Any, app_conn: Any
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    b_id = uuid.UUID(b.id)
    inserts = [
        (
            "INSERT INTO audit_log (id, tenant_id, action, entity_type, request_id)"
            " VALUES ($1, $2, 'forge', 'user', 'test')",
            (uuid.uuid4(), b_id),
        ),
        (
            "INSERT INTO users (id, tenant_id, username, email, password_hash, role)"
            " VALUES ($1, $2, 'forged', 'forged@b.example', 'x', 'admin')",
            (uuid.uuid4(), b_id),
        ),
        (
            "INSERT INTO tenants (id, name, domain, contact_email, plan, max_users, max_pocs)"
            " VALUES ($1, 'Forged', $2, 'ops@forged.example', 'standard', 1, 1)",
            (uuid.uuid4(), f"{unique('forged')}.example"),
        ),
        (
            "INSERT INTO auth_sessions (id, tenant_id, user_id, expires_at)"
            " VALUES ($1, $2, $3, now() + interval '1 day')",
            (uuid.uuid4(), b_id, uuid.UUID(b.user.user_id)),
        ),
    ]
    audit_before = await owner.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1", b_id)

    for sql, args in inserts:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await execute_as(app_conn, a.id, sql, *args)

    users = await owner.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1", b_id)
    assert users == 2
    audit_after = await owner.fetchval("SELECT count(*) FROM audit_log WHERE tenant_id = $1", b_id)
    assert audit_after == audit_before


async def test_app_role_cannot_move_a_row_into_another_tenant(
    client: Client, owner: Any, app_conn: Any
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    user_id = uuid.UUID(a.user.user_id)

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await execute_as(
            app_conn,
            a.id,
            "UPDATE users SET tenant_id = $1 WHERE id = $2",
            uuid.UUID(b.id),
            user_id,
        )

    assert str(await owner.fetchval("SELECT tenant_id FROM users WHERE id = $1", user_id)) == a.id


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE users SET full_name = 'Owned', role = 'viewer' WHERE tenant_id = $1",
        "UPDATE tenants SET name = 'Owned', max_users = 1 WHERE id = $1",
        "UPDATE auth_sessions SET revoked_at = now() WHERE tenant_id = $1",
        "DELETE FROM refresh_tokens WHERE tenant_id = $1",
    ],
)
async def test_app_role_changes_no_row_of_another_tenant(
    client: Client, owner: Any, app_conn: Any, sql: str
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    before = await snapshot(client, b)

    status = await execute_as(app_conn, a.id, sql, uuid.UUID(b.id))

    assert status.endswith(" 0"), status
    assert await snapshot(client, b) == before
    # The same statement does reach the tenant's own rows: only RLS stopped it above.
    own = await execute_as(app_conn, a.id, sql, uuid.UUID(a.id))
    assert not own.endswith(" 0"), own
    for account in (b.admin, b.user):
        assert (await client.get("/v1/users/me", headers=account.auth)).status == 200
    refresh = await client.post(
        "/v1/auth/refresh", json={"refreshToken": b.user.refresh_token, "userId": b.user.user_id}
    )
    assert refresh.status == 200, await refresh.text()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET action = 'tampered' WHERE tenant_id = $1",
        "DELETE FROM audit_log WHERE tenant_id = $1",
        "DELETE FROM users WHERE tenant_id = $1",
        "DELETE FROM tenants WHERE id = $1",
        "DELETE FROM auth_sessions WHERE tenant_id = $1",
        "TRUNCATE audit_log",
    ],
)
async def test_app_role_lacks_destructive_privileges_even_in_its_own_tenant(
    client: Client, owner: Any, app_conn: Any, sql: str
) -> None:
    a = await make_tenant(client)
    a_id = uuid.UUID(a.id)
    audit_before = await owner.fetch(
        "SELECT id, action FROM audit_log WHERE tenant_id = $1 ORDER BY id", a_id
    )
    args = (a_id,) if "$1" in sql else ()

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await execute_as(app_conn, a.id, sql, *args)

    audit_after = await owner.fetch(
        "SELECT id, action FROM audit_log WHERE tenant_id = $1 ORDER BY id", a_id
    )
    assert audit_after == audit_before
    assert await owner.fetchval("SELECT count(*) FROM users WHERE tenant_id = $1", a_id) == 2


async def test_app_role_can_append_to_its_own_audit_log(client: Client, app_conn: Any) -> None:
    a = await make_tenant(client)

    status = await execute_as(
        app_conn,
        a.id,
        "INSERT INTO audit_log (id, tenant_id, action, entity_type, request_id)"
        " VALUES ($1, $2, 'probe', 'test', 'test')",
        uuid.uuid4(),
        uuid.UUID(a.id),
    )

    assert status == "INSERT 0 1"


@pytest.mark.parametrize(
    "sql", ["SELECT count(*) FROM schema_migrations", "SELECT version FROM schema_migrations"]
)
async def test_app_role_cannot_read_schema_migrations(app_conn: Any, sql: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await app_conn.fetch(sql)


async def test_app_role_owns_no_table(owner: Any) -> None:
    tables = await owner.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    owned = await owner.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
           WHERE r.rolname = $1""",
        APP_ROLE,
    )

    assert {t["tablename"] for t in tables} >= set(TENANT_COLUMN)
    assert owned == []


async def test_app_role_is_bound_by_row_level_security(owner: Any) -> None:
    role = await owner.fetchrow(
        "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1", APP_ROLE
    )

    assert role is not None
    assert role["rolbypassrls"] is False
    assert role["rolsuper"] is False


@pytest.mark.parametrize("table", sorted(TENANT_COLUMN))
async def test_every_tenant_table_has_row_level_security_enabled(owner: Any, table: str) -> None:
    enabled = await owner.fetchval(
        "SELECT relrowsecurity FROM pg_class WHERE oid = $1::regclass", table
    )

    assert enabled is True


# Tables with a tenant column and no row-level policy, each for a reason. Their partitions
# are not listed: the application role has no privilege on them (tested below).
UNPOLICED_TABLES = {
    "search_outbox": "drained across tenants by one worker; holds only ids",
}


async def test_every_table_with_a_tenant_column_has_row_level_security(owner: Any) -> None:
    rows = await owner.fetch(
        """SELECT c.relname, c.relrowsecurity
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND NOT a.attisdropped"""
    )

    assert len(rows) > len(UNPOLICED_TABLES)
    assert {r["relname"] for r in rows if not r["relrowsecurity"]} == set(UNPOLICED_TABLES)


# --- POC and dojo tables -------------------------------------------------------------------------

CONTENT_TABLES = (
    "pocs",
    "poc_tags",
    "poc_title_words",
    "favorites",
    "dojo_sessions",
    "dojo_participants",
    "dojo_updates",
    "dojo_snapshots",
    "dojo_history",
    "dojo_chat",
    # The search views apply the tenant condition themselves (migration 0004).
    "pocs_scoped",
    "poc_tags_scoped",
)


async def make_content(client: Client, owner: Any, tenant: Tenant) -> None:
    """Rows of ``tenant`` in every POC and dojo table: through the API where it writes them,
    and as the owner for the document log and chat (written by sockets)."""
    poc_id = await create_poc(client, tenant.admin)
    resp = await client.post(
        "/v1/favorites",
        headers=tenant.user.auth,
        json={"pocId": poc_id, "userId": tenant.user.user_id},
    )
    assert resp.status == 201, await resp.text()
    dojo = await create_dojo(client, tenant.admin, initialCode="x")
    await join(client, dojo, tenant.user)
    session, tid = uuid.UUID(dojo.session_id), uuid.UUID(tenant.id)
    await owner.execute(
        "INSERT INTO dojo_updates (session_id, tenant_id, data) VALUES ($1, $2, $3)",
        session,
        tid,
        b"\x00\x00",
    )
    await owner.execute(
        "INSERT INTO dojo_chat (id, session_id, tenant_id, user_id, text) "
        "VALUES ($1, $2, $3, $4, 'hi')",
        uuid.uuid4(),
        session,
        tid,
        uuid.UUID(tenant.user.user_id),
    )
    resp = await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/end", headers=tenant.admin.auth, json={}
    )
    assert resp.status == 200, await resp.text()


async def test_app_role_sees_only_its_tenant_in_every_poc_and_dojo_table(
    client: Client, owner: Any, app_conn: Any
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    await make_content(client, owner, a)
    await make_content(client, owner, b)
    for table in CONTENT_TABLES:
        if table.endswith("_scoped"):
            continue  # the owner sees no tenant through them: it sets none
        for tenant in (a, b):
            count = await owner.fetchval(
                f"SELECT count(*) FROM {table} WHERE tenant_id = $1",  # noqa: S608
                uuid.UUID(tenant.id),
            )
            assert count > 0, f"{table} has no rows of {tenant.id}"

    seen: dict[str, set[uuid.UUID]] = {}
    unscoped: dict[str, int] = {}
    for table in CONTENT_TABLES:
        async with app_conn.transaction():
            await set_tenant(app_conn, a.id)
            rows = await app_conn.fetch(f"SELECT tenant_id FROM {table}")  # noqa: S608
            seen[table] = {r["tenant_id"] for r in rows}
        async with app_conn.transaction():
            unscoped[table] = await app_conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608

    assert seen == {table: {uuid.UUID(a.id)} for table in CONTENT_TABLES}
    assert unscoped == dict.fromkeys(CONTENT_TABLES, 0)


async def test_app_role_cannot_write_a_poc_into_another_tenant(
    client: Client, app_conn: Any
) -> None:
    a, b = await make_tenant(client), await make_tenant(client)
    insert = (
        "INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags) "
        "VALUES ($1, $2, $3, 't', 'd', 'Go', '{x}')"
    )
    async with app_conn.transaction():
        await set_tenant(app_conn, a.id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await app_conn.execute(
                insert, uuid.uuid4(), uuid.UUID(b.id), uuid.UUID(b.admin.user_id)
            )


async def test_app_role_cannot_read_poc_partitions_past_the_policy(
    owner: Any, app_conn: Any
) -> None:
    """Policies apply when ``pocs`` is read, not when a partition is named directly, so the
    application role must have no privilege on the partitions at all."""
    partitions = await owner.fetch(
        "SELECT inhrelid::regclass::text AS name FROM pg_inherits "
        "WHERE inhparent = 'pocs'::regclass ORDER BY 1"
    )

    assert len(partitions) == 64
    for row in partitions:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await app_conn.fetchval(f"SELECT count(*) FROM {row['name']}")  # noqa: S608


async def test_app_role_cannot_create_functions(app_conn: Any) -> None:
    """The search views are not security barriers; that is safe only because the application
    role cannot define a function that would see rows before the tenant condition."""
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_conn.execute(
            "CREATE FUNCTION peek(text) RETURNS boolean LANGUAGE sql AS 'SELECT true'"
        )


# --- pooled connections ----------------------------------------------------------------------


async def test_a_pooled_connection_carries_no_tenant_into_its_next_use(engines: Engines) -> None:
    """The pool skips asyncpg's RESET ALL on release: the tenant setting must end with each
    transaction, whether it commits, fails, or is abandoned by a cancelled request."""
    pool = await open_pool(engines.database_url, engines.database_app_url, min_size=1, max_size=1)
    tenant = uuid.uuid4()
    seen = "SELECT coalesce(current_setting('app.tenant_id', true), '')"
    try:
        async with tenant_tx(pool, tenant) as conn:
            assert await conn.fetchval(seen) == str(tenant)
        async with tenant_tx(pool, None) as conn:
            assert await conn.fetchval(seen) == ""

        with pytest.raises(asyncpg.DivisionByZeroError):
            async with tenant_tx(pool, tenant) as conn:
                await conn.fetchval("SELECT 1 / 0")
        async with tenant_tx(pool, None) as conn:
            assert await conn.fetchval(seen) == ""

        async def abandoned() -> None:
            async with tenant_tx(pool, tenant) as conn:
                await conn.fetchval("SELECT pg_sleep(5)")

        task = asyncio.create_task(abandoned())
        watcher = await asyncpg.connect(engines.database_url)
        try:
            # Cancelled while the server runs the statement; nothing announces that moment.
            async with asyncio.timeout(5):
                while not await watcher.fetchval(  # noqa: ASYNC110
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(5)%'"
                ):
                    await asyncio.sleep(0.01)
        finally:
            await watcher.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with tenant_tx(pool, None) as conn:
            assert await conn.fetchval(seen) == ""
            assert await conn.fetchval("SELECT count(*) FROM pocs") == 0
    finally:
        await pool.close()


async def test_request_principal_is_found_only_under_the_sessions_own_tenant(
    client: Client, owner: Any, app_conn: Any
) -> None:
    """app_request_principal sets the tenant, then reads the session under the policies: a
    token claiming another tenant for a real session finds nobody."""
    a, b = await make_tenant(client), await make_tenant(client)
    session = await owner.fetchval(
        "SELECT id FROM auth_sessions WHERE user_id = $1 AND revoked_at IS NULL LIMIT 1",
        uuid.UUID(a.admin.user_id),
    )
    call = "SELECT * FROM app_request_principal($1, $2, $3)"
    user = uuid.UUID(a.admin.user_id)

    async with app_conn.transaction():
        found = await app_conn.fetchrow(call, uuid.UUID(a.id), session, user)
        scoped = await app_conn.fetchval("SELECT current_setting('app.tenant_id')")
    async with app_conn.transaction():
        forged = await app_conn.fetchrow(call, uuid.UUID(b.id), session, user)

    assert found is not None
    assert (found["user_id"], found["tenant_id"], found["role"]) == (user, uuid.UUID(a.id), "admin")
    assert scoped == a.id
    assert forged is None
