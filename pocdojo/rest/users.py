"""Users of a tenant: registration by an admin, profiles, listing and changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ConfigDict, Field, model_validator

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Paged, Routes, paging
from pocdojo.core.db import audit
from pocdojo.core.db import sessions as sessions_db
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.db import users as users_db
from pocdojo.core.errors import Conflict, Forbidden, NotFound, QuotaExceeded
from pocdojo.rest.fields import Email, FullName, Password, Role, Username

routes = Routes(tag="users")

_UNIQUE_FIELDS = {
    "users_tenant_username_key": ("username", "this username is taken in the tenant"),
    "users_tenant_email_key": ("email", "this email is already used in the tenant"),
}


class UserRegister(ApiModel):
    username: Username
    password: Password
    email: Email
    full_name: FullName
    tenant_id: UUID
    role: Role


class UserOut(ApiModel):
    user_id: UUID
    username: str
    email: str
    full_name: str | None
    tenant_id: UUID
    role: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
    last_login: datetime | None


class UserPage(Paged):
    users: list[UserOut]


class PageQuery(ApiModel):
    page: int = Field(1, ge=1, le=1_000_000)
    limit: int = Field(20, ge=1, le=100)


class UserPatch(ApiModel):
    """Changes to a user. Self: fullName, email, password (email and password need
    currentPassword). Admin, on others: role, isActive, fullName, email."""

    # At least one change, which the document says as: one of them is there and not null.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                for name in ("fullName", "email", "password", "role", "isActive")
            ]
        }
    )

    full_name: FullName | None = None
    email: Email | None = None
    password: Password | None = None
    current_password: str | None = Field(None, max_length=128)
    role: Role | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> UserPatch:
        changes = (self.full_name, self.email, self.password, self.role, self.is_active)
        if all(v is None for v in changes):
            raise ValueError("give at least one of fullName, email, password, role, isActive")
        return self


def user_out(user: users_db.User) -> UserOut:
    """The public view of a user."""
    return UserOut(
        user_id=user.id,
        username=user.username,
        email=user.email,
        full_name=user.full_name,
        tenant_id=user.tenant_id,
        role=user.role,
        is_active=user.is_active,
        created_at=user.created_at,
        updated_at=user.updated_at,
        last_login=user.last_login,
    )


def _conflict(exc: asyncpg.UniqueViolationError) -> Conflict:
    field, message = _UNIQUE_FIELDS.get(exc.constraint_name or "", ("", "already exists"))
    return Conflict(message, code=f"{field}_taken" if field else "conflict")


@routes.op(
    "POST", "/v1/users/register", response=UserOut, status=201, roles=("admin",), errors=(409,)
)
async def register_user(ctx: Ctx, body: UserRegister) -> UserOut:
    """Register a user in the caller's tenant (admins only).

    Username and email are unique within the tenant (case-insensitive); the tenant's maxUsers
    quota is enforced (403 quota_exceeded).
    """
    ctx.require_tenant(body.tenant_id)
    password_hash = await ctx.app[appkeys.passwords_key].hash(body.password)
    tenant = await tenants_db.get(ctx.conn, ctx.principal.tenant_id, for_update=True)
    assert tenant is not None
    if await users_db.count(ctx.conn) >= tenant.max_users:
        raise QuotaExceeded(f"the tenant's limit of {tenant.max_users} users is reached")
    try:
        async with ctx.conn.transaction():
            user = await users_db.insert(
                ctx.conn,
                user_id=uuid.uuid4(),
                tenant_id=tenant.id,
                username=body.username,
                email=body.email,
                full_name=body.full_name,
                password_hash=password_hash,
                role=body.role,
            )
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(exc) from exc
    await audit.record(ctx.conn, ctx.actor(), "create", "user", user.id, {"role": user.role})
    return user_out(user)


@routes.op("GET", "/v1/users/me", response=UserOut)
async def get_me(ctx: Ctx) -> UserOut:
    """The caller's own profile."""
    user = await users_db.get(ctx.conn, ctx.principal.user_id)
    assert user is not None
    return user_out(user)


@routes.op("GET", "/v1/users", response=UserPage, roles=("admin",))
async def list_users(ctx: Ctx, query: PageQuery) -> UserPage:
    """The tenant's users, oldest first (admins only)."""
    total = await users_db.count(ctx.conn)
    users = await users_db.page(ctx.conn, limit=query.limit, offset=(query.page - 1) * query.limit)
    return UserPage(
        users=[user_out(u) for u in users],
        **paging(query.page, query.limit, total),
    )


@routes.op("GET", "/v1/users/{userId:uuid}", response=UserOut, errors=(404,))
async def get_user(ctx: Ctx) -> UserOut:
    """A user's profile; users of other tenants do not exist here (404)."""
    user = await users_db.get(ctx.conn, ctx.path_id("userId", "user"))
    if user is None:
        raise NotFound("user not found")
    return user_out(user)


@routes.op("PATCH", "/v1/users/{userId:uuid}", response=UserOut, errors=(403, 404, 409))
async def update_user(ctx: Ctx, body: UserPatch) -> UserOut:
    """Change a user. Nobody changes their own role or active flag; only admins change others.

    Deactivating a user ends all their sessions at once; changing one's password ends all
    their other sessions.
    """
    me = ctx.principal
    target = await users_db.get(ctx.conn, ctx.path_id("userId", "user"), for_update=True)
    if target is None:
        raise NotFound("user not found")
    is_self, is_admin = target.id == me.user_id, me.role == "admin"
    if body.role is not None or body.is_active is not None:
        if not is_admin:
            raise Forbidden("only an admin can change role or isActive")
        if is_self:
            raise Forbidden("you cannot change your own role or active flag", code="self_change")
    if not is_self and not is_admin:
        raise Forbidden("you can only change your own profile")
    if body.password is not None and not is_self:
        raise Forbidden("a password can only be changed by its owner")
    if is_self and (body.password is not None or body.email is not None):
        stored = await users_db.password_hash(ctx.conn, me.user_id)
        passwords = ctx.app[appkeys.passwords_key]
        if body.current_password is None or not await passwords.verify(
            stored, body.current_password
        ):
            raise Forbidden("currentPassword is missing or wrong", code="invalid_current_password")

    changes: dict[str, Any] = {}
    for column, value in (
        ("full_name", body.full_name),
        ("email", body.email),
        ("role", body.role),
        ("is_active", body.is_active),
    ):
        if value is not None:
            changes[column] = value
    if body.password is not None:
        changes["password_hash"] = await ctx.app[appkeys.passwords_key].hash(body.password)
    try:
        async with ctx.conn.transaction():
            user = await users_db.update(ctx.conn, target.id, changes)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(exc) from exc
    if body.role is not None or body.is_active is not None or body.password is not None:
        ctx.access_changed(target.tenant_id, target.id)
    if body.is_active is False:
        await sessions_db.revoke_all_for_user(ctx.conn, target.id, "deactivated")
    if body.password is not None:
        await sessions_db.revoke_all_for_user(
            ctx.conn, target.id, "password_changed", keep=me.session_id
        )
    fields = sorted(k if k != "password_hash" else "password" for k in changes)
    await audit.record(ctx.conn, ctx.actor(), "update", "user", target.id, {"fields": fields})
    return user_out(user)
