"""The report job: read the tenant's POCs under the report's filters, aggregate, render, store."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.db import users as users_db
from pocdojo.core.objectstore import report_key
from pocdojo.jobs.reporting import CONTENT_TYPES, EXTENSIONS, RENDERERS
from pocdojo.jobs.reporting.model import ReportPoc, ReportRequest, build_report
from pocdojo.jobs.runtime import Deps, PermanentJobError, Progress

# Rows are read in one query: a 100,000-POC report is ~20 MB of rows, fine for a worker.
_POCS = """
SELECT p.id, p.title, p.language, p.tags, p.user_id, u.username, u.full_name, p.status,
       p.created_at, p.view_count, p.favorite_count
FROM pocs p JOIN users u ON u.tenant_id = p.tenant_id AND u.id = p.user_id
WHERE p.tenant_id = $1 AND p.status <> 'deleted' AND p.created_at >= $2 AND p.created_at < $3
  AND ($4::text IS NULL OR p.language = $4)
  AND (cardinality($5::text[]) = 0 OR p.tags && $5::text[])
  AND ($6::uuid IS NULL OR p.user_id = $6)
ORDER BY p.created_at, p.id
"""


def _poc(row: Any) -> ReportPoc:
    return ReportPoc(
        poc_id=row["id"],
        title=row["title"],
        language=row["language"],
        tags=tuple(row["tags"]),
        owner_id=row["user_id"],
        owner_name=row["full_name"] or row["username"],
        status=row["status"],
        created_at=row["created_at"],
        views=row["view_count"],
        favorites=row["favorite_count"],
    )


async def make_report(deps: Deps, job: jobs_db.Job, progress: Progress) -> dict[str, Any]:
    """Build the report ``job`` asks for and store it; returns the report row's result."""
    async with tenant_tx(deps.pool, job.tenant_id) as conn:
        report: jobs_db.Report | None = await jobs_db.get(conn, "report", job.id)
        if report is None:
            raise PermanentJobError("the report no longer exists")
        tenant = await tenants_db.get(conn, job.tenant_id)
        requester = await users_db.get(conn, job.user_id)
        filters = report.filters
        start = datetime.combine(report.start_date, time(), UTC)
        end = datetime.combine(report.end_date + timedelta(days=1), time(), UTC)
        user_id = UUID(filters["userId"]) if filters.get("userId") else None
        rows = await conn.fetch(
            _POCS,
            job.tenant_id,
            start,
            end,
            filters.get("language"),
            filters.get("tags") or [],
            user_id,
        )
    progress.report(30)
    request = ReportRequest(
        report_type=report.report_type,  # type: ignore[arg-type]
        start=report.start_date,
        end=report.end_date,
        language=filters.get("language"),
        tags=tuple(filters.get("tags") or ()),
        user_id=user_id,
        tenant_name=tenant.name if tenant else "",
        requested_by=(requester.full_name or requester.username) if requester else "",
        generated_at=datetime.now(UTC),
    )
    pocs = [_poc(r) for r in rows]
    fmt = report.format
    key = report_key(job.tenant_id, job.user_id, job.id, EXTENSIONS[fmt])
    with tempfile.TemporaryDirectory(prefix="pocdojo-report-") as tmp:
        path = Path(tmp) / f"report.{EXTENSIONS[fmt]}"

        def render() -> None:
            RENDERERS[fmt](build_report(request, pocs), path)

        await asyncio.to_thread(render)
        progress.report(85)
        size = path.stat().st_size
        await deps.store.put_file(key, path, CONTENT_TYPES[fmt])
    return {"object_key": key, "size_bytes": size, "poc_count": len(pocs)}
