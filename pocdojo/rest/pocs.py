"""POCs: register, read (counting views), change, soft-delete, list, search and suggest."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field, model_validator
from pydantic.json_schema import SkipJsonSchema

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Paged, Routes, paging
from pocdojo.core.db import audit
from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.db import users as users_db
from pocdojo.core.errors import Forbidden, NotFound, QuotaExceeded
from pocdojo.core.languages import LANGUAGES
from pocdojo.core.search import FacetCount, PocHit, PocQuery
from pocdojo.rest.fields import (
    Description,
    Documentation,
    Language,
    PocTitle,
    RepositoryUrl,
    SearchText,
    Tags,
    Timestamp,
    split_tags,
)
from pocdojo.rest.users import PageQuery

routes = Routes(tag="pocs")

PocStatus = Literal["active", "archived"]


class PocCreate(ApiModel):
    title: PocTitle
    description: Description
    language: Language
    tags: Tags
    repository_url: RepositoryUrl | None = None
    documentation: Documentation | None = None
    user_id: UUID
    tenant_id: UUID


def _changes_schema(schema: dict[str, Any]) -> None:
    """At least one field; one that cannot be cleared is neither nullable nor null by default."""
    schema["minProperties"] = 1
    for field in schema["properties"].values():
        if "anyOf" not in field and field.get("default", ...) is None:
            del field["default"]


class PocUpdate(ApiModel):
    model_config = ConfigDict(json_schema_extra=_changes_schema)

    title: PocTitle | SkipJsonSchema[None] = None
    description: Description | SkipJsonSchema[None] = None
    language: Language | SkipJsonSchema[None] = None
    tags: Tags | SkipJsonSchema[None] = None
    repository_url: RepositoryUrl | None = None
    documentation: Documentation | None = None
    status: PocStatus | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _something(self) -> PocUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        for name in ("title", "description", "language", "tags", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class Metrics(ApiModel):
    views: int
    favorites: int


class PocOut(ApiModel):
    poc_id: UUID
    title: str
    description: str
    language: str
    tags: list[str]
    repository_url: str | None
    documentation: str | None
    user_id: UUID
    tenant_id: UUID
    status: str
    created_at: datetime
    updated_at: datetime
    metrics: Metrics


class PocUpdated(ApiModel):
    poc_id: UUID
    title: str
    updated_at: datetime
    success: bool


class Deleted(ApiModel):
    success: bool
    message: str


class PocSummary(ApiModel):
    poc_id: UUID
    title: str
    description: str
    language: str
    tags: list[str]
    user_id: UUID
    status: str
    created_at: datetime
    metrics: Metrics


class PocList(Paged):
    pocs: list[PocSummary]


class Facet(ApiModel):
    value: str
    count: int


class Facets(ApiModel):
    languages: list[Facet]
    tags: list[Facet]


class SearchResult(PocList):
    facets: Facets


class SearchQuery(ApiModel):
    name: Annotated[SearchText, Field(max_length=200)] | None = None
    language: Language | None = None
    tags: Annotated[list[str], BeforeValidator(split_tags)] = Field(
        default_factory=list, max_length=20
    )
    tags_mode: Literal["any", "all"] = "any"
    q: SearchText | None = None
    owner: UUID | None = None
    status: PocStatus | None = None
    created_from: Timestamp | None = None
    created_to: Timestamp | None = None
    sort: Literal["relevance", "created", "title", "popularity"] = "relevance"
    page: int = Field(1, ge=1, le=1000)
    limit: int = Field(20, ge=1, le=100)
    tenant_id: UUID | None = None


class SuggestQuery(ApiModel):
    prefix: Annotated[SearchText, Field(max_length=100)]
    limit: int = Field(10, ge=1, le=20)


class Suggestions(ApiModel):
    titles: list[str]
    tags: list[str]


class PopularQuery(ApiModel):
    limit: int = Field(20, ge=1, le=100)


class PopularTags(ApiModel):
    tags: list[Facet]


class LanguageList(ApiModel):
    languages: list[str]


def poc_out(poc: pocs_db.Poc, *, views: int | None = None) -> PocOut:
    """The public view of a POC."""
    return PocOut(
        poc_id=poc.id,
        title=poc.title,
        description=poc.description,
        language=poc.language,
        tags=poc.tags,
        repository_url=poc.repository_url,
        documentation=poc.documentation,
        user_id=poc.user_id,
        tenant_id=poc.tenant_id,
        status=poc.status,
        created_at=poc.created_at,
        updated_at=poc.updated_at,
        metrics=Metrics(
            views=poc.view_count if views is None else views, favorites=poc.favorite_count
        ),
    )


def _summary(hit: PocHit) -> PocSummary:
    return PocSummary(
        poc_id=hit.poc_id,
        title=hit.title,
        description=hit.description,
        language=hit.language,
        tags=hit.tags,
        user_id=hit.user_id,
        status=hit.status,
        created_at=hit.created_at,
        metrics=Metrics(views=hit.views, favorites=hit.favorites),
    )


def _summary_of(poc: pocs_db.Poc) -> PocSummary:
    return PocSummary(
        poc_id=poc.id,
        title=poc.title,
        description=poc.description,
        language=poc.language,
        tags=poc.tags,
        user_id=poc.user_id,
        status=poc.status,
        created_at=poc.created_at,
        metrics=Metrics(views=poc.view_count, favorites=poc.favorite_count),
    )


def _facets(values: list[FacetCount]) -> list[Facet]:
    return [Facet(value=f.value, count=f.count) for f in values]


async def _changed(ctx: Ctx, poc: pocs_db.Poc, action: str, fields: list[str]) -> None:
    """What every mutation of a POC does besides the change: audit, index, cache."""
    if ctx.settings.opensearch_url:
        await pocs_db.enqueue_for_index(ctx.conn, poc.tenant_id, poc.id)
    await audit.record(ctx.conn, ctx.actor(), action, "poc", poc.id, {"fields": fields})
    cache = ctx.app[appkeys.poc_cache_key]
    ctx.after_commit(lambda: cache.invalidate(poc.tenant_id, poc.id))


async def _editable(ctx: Ctx) -> pocs_db.Poc:
    poc = await pocs_db.get(
        ctx.conn, ctx.principal.tenant_id, ctx.path_id("pocId", "POC"), for_update=True
    )
    if poc is None:
        raise NotFound("POC not found")
    me = ctx.principal
    if poc.user_id != me.user_id and me.role != "admin":
        raise Forbidden("only the POC's owner or an admin can change it")
    return poc


@routes.op("GET", "/v1/languages", response=LanguageList, auth=False)
async def list_languages(ctx: Ctx) -> LanguageList:
    """The languages a POC may declare (input is matched case-insensitively)."""
    return LanguageList(languages=list(LANGUAGES))


@routes.op("POST", "/v1/pocs", response=PocOut, status=201, roles=("admin", "user"), errors=(403,))
async def create_poc(ctx: Ctx, body: PocCreate) -> PocOut:
    """Register a POC. userId and tenantId must be the caller's; maxPocs is enforced."""
    me = ctx.principal
    ctx.require_tenant(body.tenant_id)
    if body.user_id != me.user_id:
        raise Forbidden("userId does not match the token", code="user_mismatch")
    tenant = await tenants_db.get(ctx.conn, me.tenant_id, for_update=True)
    assert tenant is not None
    if await pocs_db.count_live(ctx.conn, me.tenant_id) >= tenant.max_pocs:
        raise QuotaExceeded(f"the tenant's limit of {tenant.max_pocs} POCs is reached")
    poc = await pocs_db.insert(
        ctx.conn,
        id=uuid.uuid4(),
        tenant_id=me.tenant_id,
        user_id=me.user_id,
        title=body.title,
        description=body.description,
        language=body.language,
        tags=body.tags,
        repository_url=body.repository_url,
        documentation=body.documentation,
    )
    await _changed(ctx, poc, "create", [])
    return poc_out(poc)


@routes.op("GET", "/v1/pocs/search", response=SearchResult, errors=(403,))
async def search_pocs(ctx: Ctx, query: SearchQuery) -> SearchResult:
    """Search the tenant's POCs by name (partial, typo-tolerant), language, tags, full text,
    owner and creation date, with facets by language and tag under the same filters."""
    if query.tenant_id is not None:
        ctx.require_tenant(query.tenant_id)
    found = await ctx.app[appkeys.search_key].search(
        ctx.conn,
        ctx.principal.tenant_id,
        PocQuery(
            name=query.name,
            language=query.language,
            tags=tuple(query.tags),
            tags_mode=query.tags_mode,
            q=query.q,
            owner=query.owner,
            status=query.status,
            created_from=query.created_from,
            created_to=query.created_to,
            sort=query.sort,
            page=query.page,
            limit=query.limit,
        ),
    )
    return SearchResult(
        pocs=[_summary(h) for h in found.hits],
        **paging(query.page, query.limit, found.total),
        facets=Facets(languages=_facets(found.languages), tags=_facets(found.tags)),
    )


@routes.op("GET", "/v1/pocs/suggest", response=Suggestions)
async def suggest_pocs(ctx: Ctx, query: SuggestQuery) -> Suggestions:
    """Titles and tags completing a prefix, most popular first."""
    found = await ctx.app[appkeys.search_key].suggest(
        ctx.conn, ctx.principal.tenant_id, query.prefix, query.limit
    )
    return Suggestions(titles=found.titles, tags=found.tags)


@routes.op("GET", "/v1/tags/popular", response=PopularTags)
async def popular_tags(ctx: Ctx, query: PopularQuery) -> PopularTags:
    """The tenant's most used tags on live POCs."""
    found = await ctx.app[appkeys.search_key].popular_tags(
        ctx.conn, ctx.principal.tenant_id, query.limit
    )
    return PopularTags(tags=_facets(found))


@routes.op("GET", "/v1/pocs/mine", response=PocList)
async def my_pocs(ctx: Ctx, query: PageQuery) -> PocList:
    """The caller's POCs, newest first."""
    return await _owned_by(ctx, ctx.principal.user_id, query)


@routes.op("GET", "/v1/users/{userId:uuid}/pocs", response=PocList, errors=(404,))
async def user_pocs(ctx: Ctx, query: PageQuery) -> PocList:
    """A user's POCs, newest first; users of other tenants do not exist here (404)."""
    user = await users_db.get(ctx.conn, ctx.path_id("userId", "user"))
    if user is None:
        raise NotFound("user not found")
    return await _owned_by(ctx, user.id, query)


async def _owned_by(ctx: Ctx, user_id: UUID, query: PageQuery) -> PocList:
    found, total = await pocs_db.page_by_owner(
        ctx.conn,
        ctx.principal.tenant_id,
        user_id,
        limit=query.limit,
        offset=(query.page - 1) * query.limit,
    )
    return PocList(
        pocs=[_summary_of(p) for p in found],
        **paging(query.page, query.limit, total),
    )


@routes.op("GET", "/v1/pocs/{pocId:uuid}", response=PocOut, errors=(404,))
async def get_poc(ctx: Ctx) -> PocOut:
    """A POC with its metrics; each read counts one view."""
    poc_id, tenant_id = ctx.path_id("pocId", "POC"), ctx.principal.tenant_id
    cache = ctx.app[appkeys.poc_cache_key]
    poc, generation = await cache.get(tenant_id, poc_id)
    if poc is None:
        poc = await pocs_db.get(ctx.conn, tenant_id, poc_id)
        if poc is None:
            raise NotFound("POC not found")
        await cache.put(poc, generation)
    pending = await cache.count_view(tenant_id, poc_id)
    if pending is None:
        counted = await pocs_db.view_once(ctx.conn, tenant_id, poc_id)
        if counted is None:
            raise NotFound("POC not found")
        return poc_out(counted)
    return poc_out(poc, views=poc.view_count + pending)


@routes.op(
    "PUT", "/v1/pocs/{pocId:uuid}", response=PocUpdated, roles=("admin", "user"), errors=(403, 404)
)
async def update_poc(ctx: Ctx, body: PocUpdate) -> PocUpdated:
    """Change a POC (its owner or an admin); at least one field."""
    poc = await _editable(ctx)
    changes: dict[str, Any] = {name: getattr(body, name) for name in sorted(body.model_fields_set)}
    poc = await pocs_db.update(ctx.conn, poc.tenant_id, poc.id, changes)
    await _changed(ctx, poc, "update", sorted(changes))
    return PocUpdated(poc_id=poc.id, title=poc.title, updated_at=poc.updated_at, success=True)


@routes.op(
    "DELETE", "/v1/pocs/{pocId:uuid}", response=Deleted, roles=("admin", "user"), errors=(403, 404)
)
async def delete_poc(ctx: Ctx) -> Deleted:
    """Soft-delete a POC (its owner or an admin): it disappears from every read and search."""
    poc = await _editable(ctx)
    await pocs_db.soft_delete(ctx.conn, poc.tenant_id, poc.id)
    await _changed(ctx, poc, "delete", ["status"])
    return Deleted(success=True, message="POC deleted")
