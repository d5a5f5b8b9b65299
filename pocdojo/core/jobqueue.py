"""Putting jobs on the arq queue, higher plans first.

arq takes due jobs in score order (the time they are due, in ms). A job of a higher plan is
enqueued as if it had been due earlier, by its plan's head start, so every worker takes it
before the standard jobs queued after ``now - head start``. Retries keep that head start, since
arq adds the retry delay to the job's own score.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import structlog
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus
from redis.exceptions import RedisError

from pocdojo.core.db.jobs import Kind

log = structlog.get_logger(__name__)

FUNCTIONS: dict[str, str] = {
    "report": "run_report",
    "video": "run_video",
    "email": "run_email",
    "recording": "run_recording",
    "replay_video": "run_replay_video",
}
HEAD_START: dict[str, timedelta] = {
    "standard": timedelta(0),
    "premium": timedelta(hours=1),
    "enterprise": timedelta(hours=2),
}


def arq_job_id(kind: str, job_id: UUID) -> str:
    """The queue entry's id: one entry per job at most, whoever enqueues it."""
    return f"{kind}:{job_id}"


class JobQueue:
    """Enqueues jobs by id; the job's row in PostgreSQL is the source of truth."""

    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self._redis = redis
        self.queue_name = queue_name

    async def ping(self) -> None:
        await self._redis.ping()

    async def due(self) -> int:
        """How many jobs are due (queued, their time come)."""
        count: int = await self._redis.zcount(self.queue_name, "-inf", int(time.time() * 1000))
        return count

    async def enqueue(
        self, kind: Kind, tenant_id: UUID, job_id: UUID, *, plan: str, attempt: int | None = None
    ) -> bool:
        """Queue a job; False when Redis is unreachable (the sweeper queues it later).

        Args:
            kind: report, video, email, recording or replay_video.
            tenant_id: the job's tenant.
            job_id: the job's row id.
            plan: the tenant's plan, which decides how early the job is taken.
            attempt: the try this entry starts at, when a lost entry is queued again.
        """
        due = datetime.now(UTC) - HEAD_START.get(plan, timedelta(0))
        try:
            await self._redis.enqueue_job(
                FUNCTIONS[kind],
                str(tenant_id),
                str(job_id),
                _job_id=arq_job_id(kind, job_id),
                _queue_name=self.queue_name,
                _defer_until=due,
                _job_try=attempt,
            )
        except (RedisError, OSError) as exc:
            log.warning(
                "job not queued; the sweeper will retry", job_id=str(job_id), error=str(exc)
            )
            return False
        return True

    async def status(self, kind: str, job_id: UUID) -> JobStatus:
        """What arq knows of a job's queue entry."""
        job = Job(arq_job_id(kind, job_id), self._redis, _queue_name=self.queue_name)
        return await job.status()
