"""Downloads of stored files through links the server signed (filesystem object store).

With an S3 object store the links are S3's own presigned URLs and this route serves nothing.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import Field

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Routes
from pocdojo.core.errors import NotFound
from pocdojo.core.objectstore import content_disposition
from pocdojo.core.objectstore.filesystem import FilesystemStore

routes = Routes(tag="files")


class SignedLink(ApiModel):
    expires: int = Field(description="unix time after which the link is refused")
    sig: str = Field(max_length=128)
    filename: str | None = Field(None, max_length=255)
    type: str | None = Field(None, max_length=255)


@routes.op(
    "GET",
    "/v1/files/{key:.+}",
    auth=False,
    status=200,
    media_type="application/octet-stream",
    errors=(403, 404),
)
async def download_file(ctx: Ctx, query: SignedLink) -> web.StreamResponse:
    """A stored file, for whoever holds an unexpired link the server signed."""
    store = ctx.app[appkeys.object_store_key]
    if not isinstance(store, FilesystemStore):
        raise NotFound("not found")
    key = ctx.request.match_info["key"]
    store.verify(key, query.expires, query.sig, query.filename, query.type)
    path = await asyncio.to_thread(store.path_for, key)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("file not found")
    headers = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
    if query.type:
        headers["Content-Type"] = query.type
    if query.filename:
        headers["Content-Disposition"] = content_disposition(query.filename)
    return web.FileResponse(path, headers=headers)
