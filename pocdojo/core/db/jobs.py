"""SQL for jobs (reports, videos, emails) and email templates.

Callers own the transaction and set the tenant; only ``stalled`` looks across tenants, through a
function that returns ids and counters alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

Kind = Literal["report", "video", "email", "recording", "replay_video"]


@dataclass(frozen=True)
class Job:
    id: UUID
    tenant_id: UUID
    user_id: UUID
    kind: str
    status: str
    progress: int
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class Report:
    job: Job
    report_type: str
    start_date: date
    end_date: date
    filters: dict[str, Any]
    format: str
    estimated_time: int | None
    object_key: str | None
    size_bytes: int | None
    poc_count: int | None


@dataclass(frozen=True)
class Video:
    """A yearly video (``year`` and ``template`` set) or a dojo recording's replay
    (``recording_id`` set); both are listed and polled as videos."""

    job: Job
    year: int | None
    include_metrics: bool
    template: str | None
    recording_id: UUID | None
    estimated_duration: int | None
    duration: float | None
    poc_count: int | None
    object_key: str | None
    thumbnail_key: str | None
    size_bytes: int | None


@dataclass(frozen=True)
class Notification:
    job: Job
    type: str
    recipients: list[str]
    template_id: str
    subject: str | None
    data: dict[str, Any]
    message_ids: dict[str, str]
    sent_at: datetime | None


@dataclass(frozen=True)
class RecordingMix:
    """The job that mixes a dojo recording (its id is the recording's)."""

    job: Job
    status: str
    duration: float | None


@dataclass(frozen=True)
class EmailTemplate:
    template_id: str
    subject: str
    html: str
    text: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Stalled:
    id: UUID
    tenant_id: UUID
    kind: str
    status: str
    attempts: int


_JOB = (
    "j.id, j.tenant_id, j.user_id, j.kind, j.status, j.progress, j.attempts, j.error, "
    "j.created_at, j.started_at, j.completed_at"
)
_DETAIL: dict[str, tuple[str, type[Any]]] = {
    "report": (
        "reports",
        Report,
    ),
    "video": ("videos", Video),
    "email": ("notifications", Notification),
    "recording": ("dojo_recordings", RecordingMix),
    "replay_video": ("videos", Video),
}
# Kinds listed together: a user's videos are their yearly videos and their replays.
_LISTED: dict[str, tuple[str, ...]] = {"video": ("video", "replay_video")}


def _job(row: Any) -> Job:
    return Job(**{k: row[k] for k in Job.__dataclass_fields__})


def _detail(kind: Kind, row: Any) -> Any:
    _, cls = _DETAIL[kind]
    fields = {k: row[k] for k in cls.__dataclass_fields__ if k != "job"}
    return cls(job=_job(row), **fields)


def _select(kind: Kind) -> str:
    table, cls = _DETAIL[kind]
    detail = ", ".join(f"d.{k}" for k in cls.__dataclass_fields__ if k != "job")
    return (
        f"SELECT {_JOB}, {detail}, count(*) OVER () AS total FROM jobs j JOIN {table} d USING (id)"
    )


async def insert(
    conn: Any, kind: Kind, *, id: UUID, tenant_id: UUID, user_id: UUID, **detail: Any
) -> Any:
    """Insert a queued job and its kind's row; returns the kind's record."""
    await conn.execute(
        "INSERT INTO jobs (id, tenant_id, user_id, kind) VALUES ($1, $2, $3, $4)",
        id,
        tenant_id,
        user_id,
        kind,
    )
    table, _ = _DETAIL[kind]
    names = ["id", "tenant_id", *detail]
    params = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    await conn.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({params})",
        id,
        tenant_id,
        *detail.values(),
    )
    found = await get(conn, kind, id)
    assert found is not None
    return found


async def get(conn: Any, kind: Kind, job_id: UUID) -> Any:
    """The job of ``kind`` with its details, or None."""
    row = await conn.fetchrow(f"{_select(kind)} WHERE j.id = $1", job_id)
    return None if row is None else _detail(kind, row)


async def page_of_user(
    conn: Any, kind: Kind, user_id: UUID, *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """A user's jobs of ``kind`` (videos: replays too), newest first, and how many there are."""
    kinds = list(_LISTED.get(kind, (kind,)))
    rows = await conn.fetch(
        f"{_select(kind)} WHERE j.user_id = $1 AND j.kind = ANY($2::text[]) "
        "ORDER BY j.created_at DESC, j.id LIMIT $3 OFFSET $4",
        user_id,
        kinds,
        limit,
        offset,
    )
    if rows:
        return [_detail(kind, r) for r in rows], rows[0]["total"]
    total = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE user_id = $1 AND kind = ANY($2::text[])", user_id, kinds
    )
    return [], total


async def start(conn: Any, job_id: UUID, attempt: int) -> Job | None:
    """Mark a job processing for ``attempt``; None when it is already finished or unknown."""
    row = await conn.fetchrow(
        "UPDATE jobs j SET status = 'processing', attempts = greatest(j.attempts, $2), "
        "progress = 0, started_at = now(), heartbeat_at = now() "
        f"WHERE j.id = $1 AND j.status IN ('queued', 'processing') RETURNING {_JOB}",
        job_id,
        attempt,
    )
    return None if row is None else _job(row)


async def beat(conn: Any, job_id: UUID, progress: int | None = None) -> None:
    """Record that a running job is alive, and its progress if given (never going back)."""
    await conn.execute(
        "UPDATE jobs SET heartbeat_at = now(), progress = greatest(progress, coalesce($2, 0)) "
        "WHERE id = $1 AND status = 'processing'",
        job_id,
        progress,
    )


async def complete(conn: Any, job_id: UUID) -> None:
    await conn.execute(
        "UPDATE jobs SET status = 'completed', progress = 100, completed_at = now(), "
        "heartbeat_at = now(), error = NULL WHERE id = $1",
        job_id,
    )


async def requeue(conn: Any, job_id: UUID, error: str | None) -> None:
    """Put a job back to ``queued`` (a retry is scheduled), keeping why the last try failed."""
    await conn.execute(
        "UPDATE jobs SET status = 'queued', progress = 0, error = $2, heartbeat_at = now() "
        "WHERE id = $1 AND status IN ('queued', 'processing')",
        job_id,
        error,
    )


async def fail(conn: Any, job_id: UUID, error: str) -> None:
    """End a job ``failed`` with a readable message."""
    await conn.execute(
        "UPDATE jobs SET status = 'failed', error = $2, completed_at = now(), "
        "heartbeat_at = now() WHERE id = $1 AND status IN ('queued', 'processing')",
        job_id,
        error,
    )


async def set_result(conn: Any, kind: Kind, job_id: UUID, **fields: Any) -> None:
    """Store what a job produced in its kind's row."""
    table, _ = _DETAIL[kind]
    assigns = ", ".join(f"{name} = ${i}" for i, name in enumerate(fields, start=2))
    await conn.execute(f"UPDATE {table} SET {assigns} WHERE id = $1", job_id, *fields.values())


async def stalled(conn: Any, quiet_for: float) -> list[Stalled]:
    """Unfinished jobs of every tenant that have not moved for ``quiet_for`` seconds."""
    rows = await conn.fetch(
        "SELECT * FROM app_stalled_jobs(make_interval(secs => $1))", float(quiet_for)
    )
    return [Stalled(**dict(r)) for r in rows]


_TEMPLATE = "template_id, subject, html, text, created_by, created_at, updated_at"


def _template(row: Any) -> EmailTemplate:
    return EmailTemplate(**{k: row[k] for k in EmailTemplate.__dataclass_fields__})


async def put_template(
    conn: Any,
    tenant_id: UUID,
    template_id: str,
    *,
    subject: str,
    html: str,
    text: str,
    user_id: UUID,
) -> tuple[EmailTemplate, bool]:
    """Create or replace a template; returns it and whether it was created."""
    row = await conn.fetchrow(
        "INSERT INTO email_templates (tenant_id, template_id, subject, html, text, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, template_id) DO UPDATE SET "
        "subject = excluded.subject, html = excluded.html, text = excluded.text, "
        f"updated_at = now() RETURNING {_TEMPLATE}, (xmax = 0) AS created",
        tenant_id,
        template_id,
        subject,
        html,
        text,
        user_id,
    )
    return _template(row), row["created"]


async def get_template(conn: Any, template_id: str) -> EmailTemplate | None:
    row = await conn.fetchrow(
        f"SELECT {_TEMPLATE} FROM email_templates WHERE template_id = $1", template_id
    )
    return None if row is None else _template(row)


async def list_templates(conn: Any) -> list[EmailTemplate]:
    rows = await conn.fetch(f"SELECT {_TEMPLATE} FROM email_templates ORDER BY template_id")
    return [_template(r) for r in rows]


async def delete_template(conn: Any, template_id: str) -> bool:
    status = await conn.execute("DELETE FROM email_templates WHERE template_id = $1", template_id)
    return bool(status != "DELETE 0")
