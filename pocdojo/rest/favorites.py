"""Favorites: a user's bookmarked POCs, counted exactly on each POC."""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Paged, Routes, paging
from pocdojo.core.db import audit
from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db import users as users_db
from pocdojo.core.errors import Conflict, Forbidden, NotFound
from pocdojo.rest.users import PageQuery

routes = Routes(tag="favorites")


class FavoriteAdd(ApiModel):
    poc_id: UUID
    user_id: UUID


class FavoriteOut(ApiModel):
    favorite_id: UUID
    poc_id: UUID
    user_id: UUID
    created_at: datetime


class FavoriteEntry(ApiModel):
    favorite_id: UUID
    poc_id: UUID
    poc_title: str
    language: str
    tags: list[str]
    added_at: datetime


class FavoriteList(Paged):
    favorites: list[FavoriteEntry]


class Removed(ApiModel):
    success: bool
    message: str


def _drop_cached(ctx: Ctx, poc_id: UUID) -> None:
    cache = ctx.app[appkeys.poc_cache_key]
    tenant_id = ctx.principal.tenant_id
    ctx.after_commit(lambda: cache.invalidate(tenant_id, poc_id))


@routes.op("POST", "/v1/favorites", response=FavoriteOut, status=201, errors=(403, 404, 409))
async def add_favorite(ctx: Ctx, body: FavoriteAdd) -> FavoriteOut:
    """Add a POC to the caller's favorites (userId must be the caller). Twice → 409; a POC
    that is not in the caller's tenant → 404."""
    me = ctx.principal
    if body.user_id != me.user_id:
        raise Forbidden("userId does not match the token", code="user_mismatch")
    if await pocs_db.get(ctx.conn, me.tenant_id, body.poc_id) is None:
        raise NotFound("POC not found")
    favorite = await pocs_db.add_favorite(
        ctx.conn,
        favorite_id=uuid.uuid4(),
        tenant_id=me.tenant_id,
        user_id=me.user_id,
        poc_id=body.poc_id,
    )
    if favorite is None:
        raise Conflict("this POC is already a favorite", code="already_favorite")
    await audit.record(
        ctx.conn, ctx.actor(), "create", "favorite", favorite.id, {"pocId": str(body.poc_id)}
    )
    _drop_cached(ctx, body.poc_id)
    return FavoriteOut(
        favorite_id=favorite.id,
        poc_id=favorite.poc_id,
        user_id=favorite.user_id,
        created_at=favorite.created_at,
    )


@routes.op("GET", "/v1/favorites/user/{userId:uuid}", response=FavoriteList, errors=(403, 404))
async def list_favorites(ctx: Ctx, query: PageQuery) -> FavoriteList:
    """A user's favorites with POC details, newest first (the user themself or an admin)."""
    me = ctx.principal
    user_id = ctx.path_id("userId", "user")
    if user_id != me.user_id and me.role != "admin":
        raise Forbidden("you can only list your own favorites")
    if await users_db.get(ctx.conn, user_id) is None:
        raise NotFound("user not found")
    entries, total = await pocs_db.favorites_of(
        ctx.conn, me.tenant_id, user_id, limit=query.limit, offset=(query.page - 1) * query.limit
    )
    return FavoriteList(
        favorites=[
            FavoriteEntry(
                favorite_id=e.id,
                poc_id=e.poc_id,
                poc_title=e.poc_title,
                language=e.language,
                tags=e.tags,
                added_at=e.added_at,
            )
            for e in entries
        ],
        **paging(query.page, query.limit, total),
    )


@routes.op("DELETE", "/v1/favorites/{favoriteId:uuid}", response=Removed, errors=(403, 404))
async def remove_favorite(ctx: Ctx) -> Removed:
    """Remove one of the caller's favorites."""
    favorite_id = ctx.path_id("favoriteId", "favorite")
    found = await pocs_db.get_favorite(ctx.conn, favorite_id)
    if found is None:
        raise NotFound("favorite not found")
    if found.user_id != ctx.principal.user_id:
        raise Forbidden("you can only remove your own favorites")
    removed = await pocs_db.remove_favorite(ctx.conn, ctx.principal.tenant_id, favorite_id)
    if removed is None:
        raise NotFound("favorite not found")
    await audit.record(ctx.conn, ctx.actor(), "delete", "favorite", favorite_id)
    _drop_cached(ctx, removed.poc_id)
    return Removed(success=True, message="favorite removed")
