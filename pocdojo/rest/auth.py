"""Login, token refresh and logout.

A login opens a session; its refresh token is opaque, stored hashed, and rotated on every use.
Presenting a refresh token that was already exchanged revokes the whole session, since either
the client or a thief holds a stolen copy. Access tokens name the session, so revoking it
stops them too.
"""

from __future__ import annotations

import uuid
from typing import Literal
from uuid import UUID

from pydantic import Field

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Routes
from pocdojo.core.db import audit, tenant_tx
from pocdojo.core.db import sessions as sessions_db
from pocdojo.core.db import users as users_db
from pocdojo.core.errors import Unauthorized
from pocdojo.core.security import RefreshToken

routes = Routes(tag="auth")

_BAD_CREDENTIALS = "invalid username, password or tenant"


class LoginRequest(ApiModel):
    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    tenant_id: str = Field(
        min_length=1, max_length=100, description="the tenant's id or its domain"
    )


class LoginResponse(ApiModel):
    user_id: UUID
    token: str
    tenant_id: UUID
    refresh_token: str
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"
    role: str


class RefreshRequest(ApiModel):
    refresh_token: str = Field(min_length=1, max_length=500)
    user_id: UUID


class RefreshResponse(ApiModel):
    token: str
    refresh_token: str
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"


class LogoutRequest(ApiModel):
    user_id: UUID
    token: str = Field(
        min_length=1, max_length=4096, description="the session's access or refresh token"
    )


class LogoutResponse(ApiModel):
    success: bool
    message: str


@routes.op("POST", "/v1/auth/login", response=LoginResponse, auth=False, errors=(401, 429))
async def login(ctx: Ctx, body: LoginRequest) -> LoginResponse:
    """Exchange username, password and tenant (id or domain) for an access and refresh token.

    An unknown tenant, an unknown user, a wrong password and a deactivated account all get the
    same 401. Failed attempts are limited per account and per client IP (429 + Retry-After).
    """
    settings = ctx.settings
    limiter = ctx.app[appkeys.limiter_key]
    pool = ctx.app[appkeys.db_pool_key]
    ip_key = f"login:ip:{ctx.client_ip}"
    # Refuse a blocked address before it costs a query; the reservation below enforces.
    await limiter.ensure_below(ip_key, limit=settings.login_fail_limit_ip, what="failed logins")
    if "\x00" in body.tenant_id or "\x00" in body.username:
        # PostgreSQL text cannot hold NUL, so no tenant or user is named with one.
        tenant_id, name = None, body.username.lower()
    else:
        async with tenant_tx(pool, None) as conn:
            tenant_id, name = await users_db.login_target(conn, body.tenant_id, body.username)
    # Keyed by the resolved tenant, so naming it by id or by domain counts as one account, and
    # by the name as the lookup folds it, so every spelling that finds the user counts as one.
    tenant_ref = str(tenant_id) if tenant_id else body.tenant_id.lower()
    account_key = f"login:acct:{tenant_ref}:{name}"
    # Count the attempt as failed before verifying it, so attempts sent at once cannot all
    # pass the limits; a success gives its place back below.
    await limiter.reserve(
        {ip_key: settings.login_fail_limit_ip, account_key: settings.login_fail_limit_account},
        window=settings.login_fail_window,
        what="failed logins",
    )
    credentials = None
    if tenant_id is not None:
        async with tenant_tx(pool, tenant_id) as conn:
            credentials = await users_db.credentials_by_username(conn, body.username)
    # Verify even when there is nothing to verify against, so timing reveals nothing.
    ok = await ctx.app[appkeys.passwords_key].verify(
        credentials.password_hash if credentials else None, body.password
    )
    if not ok or credentials is None or not credentials.user.is_active:
        if tenant_id is not None:
            async with tenant_tx(pool, tenant_id) as conn:
                user_id = credentials.user.id if credentials else None
                await audit.record(
                    conn,
                    ctx.actor(tenant_id, user_id),
                    "login_failed",
                    "user",
                    user_id,
                    {"username": body.username[:50]},
                )
        raise Unauthorized(_BAD_CREDENTIALS, code="invalid_credentials")

    user = credentials.user
    # A success is no failure for the address, and clears the account's failures.
    await limiter.release(ip_key, forget=[account_key])
    session_id = uuid.uuid4()
    refresh = RefreshToken.new(user.tenant_id)
    async with tenant_tx(pool, user.tenant_id) as conn:
        await sessions_db.create(
            conn,
            session_id=session_id,
            tenant_id=user.tenant_id,
            user_id=user.id,
            ttl_seconds=settings.refresh_token_ttl,
            ip_address=ctx.client_ip,
            user_agent=ctx.request.headers.get("User-Agent"),
        )
        await sessions_db.add_token(
            conn, digest=refresh.digest, tenant_id=user.tenant_id, session_id=session_id
        )
        await users_db.touch_last_login(conn, user.id)
        await audit.record(conn, ctx.actor(user.tenant_id, user.id), "login", "session", session_id)
    tokens = ctx.app[appkeys.tokens_key]
    return LoginResponse(
        user_id=user.id,
        token=tokens.issue(
            user_id=user.id, tenant_id=user.tenant_id, role=user.role, session_id=session_id
        ),
        tenant_id=user.tenant_id,
        refresh_token=refresh.value,
        expires_in=tokens.ttl,
        role=user.role,
    )


@routes.op("POST", "/v1/auth/refresh", response=RefreshResponse, auth=False, errors=(401,))
async def refresh(ctx: Ctx, body: RefreshRequest) -> RefreshResponse:
    """Exchange a refresh token for a new access token and a new refresh token.

    Each refresh token works once. Using one again revokes its whole session (401
    refresh_token_reused), and a deactivated user cannot refresh.
    """
    presented = RefreshToken.parse(body.refresh_token)
    tenant_id = presented.tenant_id
    reused = False
    async with tenant_tx(ctx.app[appkeys.db_pool_key], tenant_id) as conn:
        found = await sessions_db.lookup_token(conn, presented.digest)
        if found is None or found.user_id != body.user_id:
            raise Unauthorized("invalid refresh token", code="invalid_token")
        if found.used_at is not None:
            # Commit the revocation before answering: the error must not roll it back.
            reused = await sessions_db.revoke(conn, found.session_id, "refresh_token_reused")
            await audit.record(
                conn,
                ctx.actor(tenant_id, found.user_id),
                "refresh_reuse",
                "session",
                found.session_id,
            )
        elif found.session_revoked or found.session_expired or not found.user_active:
            raise Unauthorized("the session has ended; log in again", code="session_revoked")
        else:
            await sessions_db.mark_used(conn, presented.digest, found.session_id)
            successor = RefreshToken.new(tenant_id)
            await sessions_db.add_token(
                conn, digest=successor.digest, tenant_id=tenant_id, session_id=found.session_id
            )
    if found.used_at is not None:
        if reused:  # committed: the session's sockets close too
            await ctx.app[appkeys.live_rooms_key].access_changed(tenant_id, found.user_id)
        raise Unauthorized(
            "this refresh token was already used; the session is revoked"
            if reused
            else "the session has ended; log in again",
            code="refresh_token_reused",
        )
    tokens = ctx.app[appkeys.tokens_key]
    return RefreshResponse(
        token=tokens.issue(
            user_id=found.user_id,
            tenant_id=tenant_id,
            role=found.role,
            session_id=found.session_id,
        ),
        refresh_token=successor.value,
        expires_in=tokens.ttl,
    )


@routes.op("POST", "/v1/auth/logout", response=LogoutResponse, auth=False, errors=(401,))
async def logout(ctx: Ctx, body: LogoutRequest) -> LogoutResponse:
    """End a session, named by its access token (even an expired one) or its refresh token.

    The session's refresh token and every access token issued for it stop working.
    """
    if body.token.count(".") == 2:
        claims = ctx.app[appkeys.tokens_key].decode(body.token, verify_exp=False)
        tenant_id, session_id = claims.tenant_id, claims.session_id
        async with tenant_tx(ctx.app[appkeys.db_pool_key], tenant_id) as conn:
            owner = await sessions_db.owner_of(conn, session_id)
            if owner is None or owner != body.user_id or claims.user_id != owner:
                raise Unauthorized("the token does not belong to this user", code="invalid_token")
            await _end_session(ctx, conn, tenant_id, owner, session_id)
    else:
        presented = RefreshToken.parse(body.token)
        tenant_id = presented.tenant_id
        async with tenant_tx(ctx.app[appkeys.db_pool_key], tenant_id) as conn:
            found = await sessions_db.lookup_token(conn, presented.digest)
            if found is None or found.user_id != body.user_id:
                raise Unauthorized("invalid refresh token", code="invalid_token")
            await _end_session(ctx, conn, tenant_id, found.user_id, found.session_id)
    return LogoutResponse(success=True, message="logged out")


async def _end_session(
    ctx: Ctx, conn: object, tenant_id: UUID, user_id: UUID, session_id: UUID
) -> None:
    if await sessions_db.revoke(conn, session_id, "logout"):
        await audit.record(conn, ctx.actor(tenant_id, user_id), "logout", "session", session_id)
        ctx.access_changed(tenant_id, user_id)
