"""Tenant signup and tenant information."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg
from pydantic import Field, model_validator

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Routes
from pocdojo.core.db import audit, tenant_tx
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.db import users as users_db
from pocdojo.core.errors import Conflict, NotFound
from pocdojo.rest.fields import Domain, Email, FullName, Name, Password, Plan, Username

routes = Routes(tag="tenants")

Feature = Literal["dojos", "voice", "recording", "reports", "videos", "search", "notifications"]
ALL_FEATURES: list[str] = list(Feature.__args__)  # type: ignore[attr-defined]

# What each plan allows at most; a signup may ask for less, never more.
PLAN_LIMITS: dict[str, tuple[int, int]] = {
    "standard": (50, 5_000),
    "premium": (500, 100_000),
    "enterprise": (100_000, 10_000_000),
}


class TenantConfiguration(ApiModel):
    max_users: int | None = Field(None, ge=1)
    max_pocs: int | None = Field(None, ge=1)
    features: list[Feature] | None = Field(None, max_length=len(ALL_FEATURES))


class AdminAccount(ApiModel):
    """The tenant's first administrator."""

    username: Username
    email: Email
    full_name: FullName
    password: Password


class TenantCreate(ApiModel):
    name: Name
    domain: Domain
    contact_email: Email
    plan: Plan
    configuration: TenantConfiguration | None = None
    admin: AdminAccount

    @model_validator(mode="after")
    def _within_plan(self) -> TenantCreate:
        max_users, max_pocs = PLAN_LIMITS[self.plan]
        config = self.configuration
        if config is not None and (config.max_users or 0) > max_users:
            raise ValueError(f"configuration.maxUsers exceeds the {self.plan} plan's {max_users}")
        if config is not None and (config.max_pocs or 0) > max_pocs:
            raise ValueError(f"configuration.maxPocs exceeds the {self.plan} plan's {max_pocs}")
        return self


class TenantConfigurationOut(ApiModel):
    max_users: int
    max_pocs: int
    features: list[str]


class AdminRef(ApiModel):
    user_id: UUID
    username: str


class TenantCreated(ApiModel):
    tenant_id: UUID
    name: str
    domain: str
    plan: str
    status: str
    configuration: TenantConfigurationOut
    admin: AdminRef
    created_at: datetime


class TenantUsageOut(ApiModel):
    user_count: int
    poc_count: int
    storage_used: int


class TenantInfo(ApiModel):
    tenant_id: UUID
    name: str
    domain: str
    contact_email: str
    plan: str
    status: str
    configuration: TenantConfigurationOut
    usage: TenantUsageOut
    created_at: datetime
    updated_at: datetime


def _configuration(tenant: tenants_db.Tenant) -> TenantConfigurationOut:
    return TenantConfigurationOut(
        max_users=tenant.max_users, max_pocs=tenant.max_pocs, features=tenant.features
    )


@routes.op("POST", "/v1/tenants", response=TenantCreated, status=201, auth=False, errors=(409, 429))
async def create_tenant(ctx: Ctx, body: TenantCreate) -> TenantCreated:
    """Sign up a company: creates the tenant and its first admin.

    Rate-limited per client IP. The domain is unique across all tenants (409 when taken).
    """
    settings = ctx.settings
    await ctx.app[appkeys.limiter_key].consume(
        f"signup:ip:{ctx.client_ip}",
        limit=settings.signup_limit_ip,
        window=settings.signup_window,
        what="signups from this address",
    )
    max_users, max_pocs = PLAN_LIMITS[body.plan]
    config = body.configuration or TenantConfiguration()
    password_hash = await ctx.app[appkeys.passwords_key].hash(body.admin.password)
    tenant_id, admin_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with tenant_tx(ctx.app[appkeys.db_pool_key], tenant_id) as conn:
            tenant = await tenants_db.insert(
                conn,
                tenant_id=tenant_id,
                name=body.name,
                domain=body.domain,
                contact_email=body.contact_email,
                plan=body.plan,
                max_users=config.max_users or max_users,
                max_pocs=config.max_pocs or max_pocs,
                features=ALL_FEATURES if config.features is None else sorted(set(config.features)),
            )
            admin = await users_db.insert(
                conn,
                user_id=admin_id,
                tenant_id=tenant_id,
                username=body.admin.username,
                email=body.admin.email,
                full_name=body.admin.full_name,
                password_hash=password_hash,
                role="admin",
            )
            actor = ctx.actor(tenant_id, admin_id)
            await audit.record(conn, actor, "create", "tenant", tenant_id, {"plan": body.plan})
            await audit.record(conn, actor, "create", "user", admin_id, {"role": "admin"})
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("a tenant with this domain already exists", code="domain_taken") from exc
    return TenantCreated(
        tenant_id=tenant.id,
        name=tenant.name,
        domain=tenant.domain,
        plan=tenant.plan,
        status=tenant.status,
        configuration=_configuration(tenant),
        admin=AdminRef(user_id=admin.id, username=admin.username),
        created_at=tenant.created_at,
    )


@routes.op("GET", "/v1/tenants/{tenantId:uuid}", response=TenantInfo, errors=(404,))
async def get_tenant(ctx: Ctx) -> TenantInfo:
    """Tenant information, configuration and usage; only for members of that tenant."""
    tenant = await tenants_db.get(ctx.conn, ctx.path_id("tenantId", "tenant"))
    if tenant is None or tenant.id != ctx.principal.tenant_id:
        raise NotFound("tenant not found")
    usage = await tenants_db.usage(ctx.conn, tenant.id)
    return TenantInfo(
        tenant_id=tenant.id,
        name=tenant.name,
        domain=tenant.domain,
        contact_email=tenant.contact_email,
        plan=tenant.plan,
        status=tenant.status,
        configuration=_configuration(tenant),
        usage=TenantUsageOut(
            user_count=usage.user_count,
            poc_count=usage.poc_count,
            storage_used=usage.storage_used,
        ),
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
    )
