"""The yearly video job: the user's POCs of one year rendered to an MP4 and a thumbnail."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.db import users as users_db
from pocdojo.core.objectstore import thumbnail_key, video_key
from pocdojo.jobs.runtime import Deps, PermanentJobError, Progress
from pocdojo.media.video import VideoPoc, VideoSpec, render_yearly_video

# One card per POC, up to MAX_CARDS (3 s each: 120 cards make a 6-minute video); beyond it,
# the most viewed and favorited POCs of the year, shown in the order they were created.
MAX_CARDS = 120
_POCS = """
SELECT * FROM (
    SELECT id, title, language, tags, created_at, description, view_count, favorite_count
    FROM pocs
    WHERE tenant_id = $1 AND user_id = $2 AND status <> 'deleted'
      AND created_at >= $3 AND created_at < $4
    ORDER BY view_count + favorite_count DESC, created_at, id
    LIMIT $5
) top ORDER BY created_at, id
"""


async def year_poc_count(conn: Any, tenant_id: Any, user_id: Any, year: int) -> int:
    """How many live POCs ``user_id`` created in ``year`` (a video needs at least one)."""
    start, end = _year(year)
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pocs WHERE tenant_id = $1 AND user_id = $2 "
            "AND status <> 'deleted' AND created_at >= $3 AND created_at < $4",
            tenant_id,
            user_id,
            start,
            end,
        )
    )


def _year(year: int) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


async def make_video(deps: Deps, job: jobs_db.Job, progress: Progress) -> dict[str, Any]:
    """Render the video ``job`` asks for and store it with its thumbnail."""
    async with tenant_tx(deps.pool, job.tenant_id) as conn:
        video: jobs_db.Video | None = await jobs_db.get(conn, "video", job.id)
        if video is None or video.year is None or video.template is None:
            raise PermanentJobError("the video no longer exists")
        owner = await users_db.get(conn, job.user_id)
        tenant = await tenants_db.get(conn, job.tenant_id)
        rows = await conn.fetch(_POCS, job.tenant_id, job.user_id, *_year(video.year), MAX_CARDS)
    if not rows:
        raise PermanentJobError(f"no POCs in {video.year}")
    spec = VideoSpec(
        year=video.year,
        owner_name=(owner.full_name or owner.username) if owner else "",
        company=tenant.name if tenant else "",
        pocs=tuple(
            VideoPoc(
                title=r["title"],
                language=r["language"],
                tags=tuple(r["tags"]),
                created_at=r["created_at"],
                description=r["description"],
                views=r["view_count"],
                favorites=r["favorite_count"],
            )
            for r in rows
        ),
        include_metrics=video.include_metrics,
        template=video.template,
    )
    key = video_key(job.tenant_id, job.user_id, video.year, job.id)
    thumb = thumbnail_key(job.tenant_id, job.user_id, job.id)
    with tempfile.TemporaryDirectory(prefix="pocdojo-video-") as tmp:
        mp4, jpg = Path(tmp) / "video.mp4", Path(tmp) / "thumbnail.jpg"
        result = await asyncio.to_thread(
            render_yearly_video, spec, mp4, jpg, lambda p: progress.report(p * 9 // 10)
        )
        stored = await store_video(deps, mp4, jpg, key, thumb)
    return {**stored, "duration": result.duration_seconds, "poc_count": len(rows)}


async def store_video(deps: Deps, mp4: Path, jpg: Path, key: str, thumb: str) -> dict[str, Any]:
    """Store a rendered video and its thumbnail; the job result's keys and size for them."""
    size = sum(await asyncio.to_thread(lambda: [p.stat().st_size for p in (mp4, jpg)]))
    await deps.store.put_file(key, mp4, "video/mp4")
    await deps.store.put_file(thumb, jpg, "image/jpeg")
    return {"object_key": key, "thumbnail_key": thumb, "size_bytes": size}
