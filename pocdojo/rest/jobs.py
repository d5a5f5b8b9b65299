"""What the report, video and notification endpoints share: access to a job, its status
fields, queueing after commit, and signed links to what it produced."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, paging
from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.errors import NotFound

JobStatus = Literal["queued", "processing", "completed", "failed"]


class JobFields(ApiModel):
    """Fields every job's status carries."""

    status: JobStatus
    progress: int
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


def job_fields(job: jobs_db.Job) -> dict[str, Any]:
    return {
        "status": job.status,
        "progress": job.progress,
        "attempts": job.attempts,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
    }


async def visible(ctx: Ctx, kind: jobs_db.Kind, name: str, what: str) -> Any:
    """The job named by path parameter ``name`` if the caller may see it: its requester, or an
    admin of its tenant. Anyone else, and every other tenant, gets the same 404."""
    job = await jobs_db.get(ctx.conn, kind, ctx.path_id(name, what))
    me = ctx.principal
    if job is None or (job.job.user_id != me.user_id and me.role != "admin"):
        raise NotFound(f"{what} not found")
    return job


async def queue_after_commit(ctx: Ctx, kind: jobs_db.Kind, job_id: UUID) -> None:
    """Queue the job once its rows are committed (a worker must find them)."""
    tenant = await tenants_db.get(ctx.conn, ctx.principal.tenant_id)
    plan = tenant.plan if tenant is not None else "standard"
    queue, tenant_id = ctx.app[appkeys.job_queue_key], ctx.principal.tenant_id

    async def enqueue() -> None:
        await queue.enqueue(kind, tenant_id, job_id, plan=plan)

    ctx.after_commit(enqueue)


async def signed_url(
    ctx: Ctx, key: str | None, *, filename: str | None = None, content_type: str | None = None
) -> str | None:
    """An expiring link to ``key`` in the object store, or None when there is nothing yet."""
    if key is None:
        return None
    return await ctx.app[appkeys.object_store_key].download_url(
        key,
        expires_in=ctx.settings.download_url_ttl,
        filename=filename,
        content_type=content_type,
    )


async def page_of_mine(
    ctx: Ctx, kind: jobs_db.Kind, page: int, limit: int, render: Callable[[Any], Awaitable[Any]]
) -> tuple[list[Any], dict[str, int]]:
    """One page of the caller's jobs of ``kind``, newest first, each passed through
    ``render``; with the paging fields (totalCount, page, limit, totalPages)."""
    found, total = await jobs_db.page_of_user(
        ctx.conn, kind, ctx.principal.user_id, limit=limit, offset=(page - 1) * limit
    )
    return [await render(item) for item in found], paging(page, limit, total)
