"""Videos rendered in the background to an MP4: a user's POCs of one year, and the replay of a
recorded dojo (its code as it changed, with the voice). Both are polled and listed here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from pydantic import Field, field_validator

from pocdojo.core.api import ApiModel, Ctx, Paged, Routes
from pocdojo.core.db import audit
from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import users as users_db
from pocdojo.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from pocdojo.jobs.videos import MAX_CARDS, year_poc_count
from pocdojo.media import replay
from pocdojo.media.video import TEMPLATES, estimate_seconds
from pocdojo.rest.jobs import (
    JobFields,
    job_fields,
    page_of_mine,
    queue_after_commit,
    signed_url,
    visible,
)
from pocdojo.rest.users import PageQuery

routes = Routes(tag="videos")

FIRST_YEAR = 2020


class VideoGenerate(ApiModel):
    user_id: UUID
    year: int = Field(ge=FIRST_YEAR, description=f"from {FIRST_YEAR} to the current year")
    include_metrics: bool = False
    template: str = Field("default", description=f"one of: {', '.join(TEMPLATES)}")
    tenant_id: UUID | None = Field(None, description="if given, must be the caller's tenant")

    @field_validator("year")
    @classmethod
    def _year(cls, value: int) -> int:
        now = datetime.now(UTC).year
        if not FIRST_YEAR <= value <= now:
            raise ValueError(f"year must be between {FIRST_YEAR} and {now}")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if value not in TEMPLATES:
            raise ValueError(f"unknown template; one of: {', '.join(TEMPLATES)}")
        return value


class VideoAccepted(ApiModel):
    video_id: UUID
    status: str
    estimated_duration: int = Field(description="seconds of rendering, roughly")
    message: str


class VideoStatus(JobFields):
    video_id: UUID
    user_id: UUID
    year: int | None = Field(description="the year of a yearly video; null for a replay")
    template: str | None = Field(description="a yearly video's template; null for a replay")
    recording_id: UUID | None = Field(description="the dojo recording a replay shows")
    include_metrics: bool
    duration: float | None = Field(description="seconds of video, once completed")
    poc_count: int | None
    download_url: str | None = Field(description="expiring link, once completed")
    thumbnail_url: str | None = Field(description="expiring link, once completed")


class VideoList(Paged):
    videos: list[VideoStatus]


async def _status(ctx: Ctx, video: jobs_db.Video) -> VideoStatus:
    done = video.job.status == "completed"
    name = (
        f"pocdojo-{video.year}.mp4"
        if video.recording_id is None
        else f"dojo-replay-{video.recording_id}.mp4"
    )
    return VideoStatus(
        video_id=video.job.id,
        user_id=video.job.user_id,
        year=video.year,
        template=video.template,
        recording_id=video.recording_id,
        include_metrics=video.include_metrics,
        duration=video.duration,
        poc_count=video.poc_count,
        download_url=await signed_url(
            ctx,
            video.object_key if done else None,
            filename=name,
            content_type="video/mp4",
        ),
        thumbnail_url=await signed_url(
            ctx, video.thumbnail_key if done else None, content_type="image/jpeg"
        ),
        **job_fields(video.job),
    )


@routes.op(
    "POST",
    "/v1/videos/generate-yearly",
    response=VideoAccepted,
    status=202,
    roles=("admin", "user"),
    errors=(403, 404, 422),
)
async def generate_yearly_video(ctx: Ctx, body: VideoGenerate) -> VideoAccepted:
    """Request the yearly video of a user's POCs (the caller's own; admins: any user's)."""
    me = ctx.principal
    ctx.require_tenant(body.tenant_id)
    if body.user_id != me.user_id:
        if me.role != "admin":
            raise Forbidden("userId does not match the token", code="user_mismatch")
        if await users_db.get(ctx.conn, body.user_id) is None:
            raise NotFound("user not found")
    count = await year_poc_count(ctx.conn, ctx.principal.tenant_id, body.user_id, body.year)
    if count == 0:
        raise ValidationFailed(
            f"the user has no POCs in {body.year}",
            code="no_pocs_in_year",
            details=[{"field": "year", "message": "at least one POC is needed"}],
        )
    estimate = estimate_seconds(min(count, MAX_CARDS))
    video = await jobs_db.insert(
        ctx.conn,
        "video",
        id=uuid.uuid4(),
        tenant_id=me.tenant_id,
        user_id=body.user_id,
        year=body.year,
        include_metrics=body.include_metrics,
        template=body.template,
        estimated_duration=estimate,
    )
    await audit.record(
        ctx.conn, ctx.actor(), "generate", "video", video.job.id, {"year": body.year}
    )
    await queue_after_commit(ctx, "video", video.job.id)
    return VideoAccepted(
        video_id=video.job.id,
        status=video.job.status,
        estimated_duration=estimate,
        message=(
            f"video of {count} POCs queued; poll its status"
            if count <= MAX_CARDS
            else f"video of the {MAX_CARDS} most popular of {count} POCs queued; poll its status"
        ),
    )


@routes.op(
    "POST",
    "/v1/dojos/sessions/{sessionId:uuid}/recordings/{recordingId:uuid}/video",
    response=VideoAccepted,
    status=202,
    roles=("admin", "user"),
    errors=(403, 404, 409),
)
async def generate_replay_video(ctx: Ctx) -> VideoAccepted:
    """Request the replay video of a recorded dojo: its code as it changed, each author's
    edits in their colour, with the recording's voice (participants only). The recording must
    be ready (mixed); before that, 409. Poll the video's status like a yearly video's."""
    me = ctx.principal
    session = await dojos_db.get(ctx.conn, ctx.path_id("sessionId", "session"))
    if session is None:
        raise NotFound("session not found")
    if me.role != "admin" and (
        await dojos_db.participant_role(ctx.conn, session.id, me.user_id) is None
    ):
        raise Forbidden("only participants can ask for this", code="not_participant")
    recording = await recordings_db.get(
        ctx.conn, session.id, ctx.path_id("recordingId", "recording")
    )
    if recording is None:
        raise NotFound("recording not found")
    if recording.status != "ready":
        raise Conflict(
            f"the recording is {recording.status}, not ready: its video can be made once its "
            "voice is mixed",
            code="recording_not_ready",
        )
    estimate = replay.estimate_seconds(recording.duration or 0.0)
    video = await jobs_db.insert(
        ctx.conn,
        "replay_video",
        id=uuid.uuid4(),
        tenant_id=me.tenant_id,
        user_id=me.user_id,
        recording_id=recording.id,
        year=None,
        template=None,
        estimated_duration=estimate,
    )
    await audit.record(
        ctx.conn,
        ctx.actor(),
        "generate",
        "video",
        video.job.id,
        {"recordingId": str(recording.id)},
    )
    await queue_after_commit(ctx, "replay_video", video.job.id)
    return VideoAccepted(
        video_id=video.job.id,
        status=video.job.status,
        estimated_duration=estimate,
        message=f"replay of {round(recording.duration or 0)} s of the dojo queued; poll its status",
    )


@routes.op("GET", "/v1/videos/{videoId:uuid}/status", response=VideoStatus, errors=(404,))
async def video_status(ctx: Ctx) -> VideoStatus:
    """A video's status and progress; download and thumbnail links once completed."""
    video: jobs_db.Video = await visible(ctx, "video", "videoId", "video")
    return await _status(ctx, video)


@routes.op("GET", "/v1/videos", response=VideoList)
async def list_videos(ctx: Ctx, query: PageQuery) -> VideoList:
    """The caller's videos, newest first."""
    items, paging = await page_of_mine(
        ctx, "video", query.page, query.limit, lambda item: _status(ctx, item)
    )
    return VideoList(videos=items, **paging)
