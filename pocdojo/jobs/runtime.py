"""What every job shares: its status row kept true, progress and heartbeats, retries.

A job function is ``async def handler(deps, job, progress) -> dict`` returning the fields of its
result row. ``tracked`` turns it into an arq function that marks the row ``processing``, beats
while it runs, stores the result and ``completed`` in one transaction, and on failure either
puts the row back to ``queued`` with the error and asks arq to retry after a doubling delay, or,
after the last try (or for an error no retry can fix), ends it ``failed`` with a readable
message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from arq import Retry
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.jobqueue import JobQueue
from pocdojo.core.objectstore import ObjectStore
from pocdojo.core.settings import Settings

log = structlog.get_logger(__name__)


class JobMetrics:
    """Prometheus metrics of the jobs a worker runs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.finished = Counter(
            "pocdojo_jobs",
            "Job tries by kind and outcome (completed, failed, retried, interrupted)",
            ["kind", "outcome"],
            registry=registry,
        )
        self.running = Gauge(
            "pocdojo_jobs_running", "Jobs running now", ["kind"], registry=registry
        )
        self.seconds = Histogram(
            "pocdojo_job_duration_seconds",
            "How long one try of a job took, by kind",
            ["kind"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
            registry=registry,
        )


class PermanentJobError(Exception):
    """A failure that retrying cannot fix (the input itself is wrong); the job ends failed."""


@dataclass
class Deps:
    """What job functions use; opened once per worker."""

    settings: Settings
    pool: asyncpg.Pool
    store: ObjectStore
    queue: JobQueue
    metrics: JobMetrics
    email: Any = None  # the email backend, opened on first use


class Progress:
    """Progress 0-100 and a heartbeat, written by a background task.

    ``report`` may be called from any thread (renderers run in worker threads); the value is
    written at most every half second, and the heartbeat every ``interval`` seconds either way,
    so the sweeper can tell a running job from one whose worker died.
    """

    def __init__(self, pool: asyncpg.Pool, job: jobs_db.Job, interval: float) -> None:
        self._pool = pool
        self._job = job
        self._interval = interval
        self._value = 0
        self._written = 0
        self._task: asyncio.Task[None] | None = None

    def report(self, percent: int) -> None:
        """Record progress (thread-safe: one int assignment); never goes back."""
        self._value = max(self._value, min(99, max(0, int(percent))))

    async def __aenter__(self) -> Progress:
        self._task = asyncio.create_task(self._run(), name=f"job-beat-{self._job.id}")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        since_beat = 0.0
        step = min(0.5, self._interval)
        while True:
            await asyncio.sleep(step)
            since_beat += step
            if self._value == self._written and since_beat < self._interval:
                continue
            value = self._value
            try:
                async with tenant_tx(self._pool, self._job.tenant_id) as conn:
                    await jobs_db.beat(conn, self._job.id, value)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("job heartbeat failed", job_id=str(self._job.id), error=str(exc))
                continue
            self._written, since_beat = value, 0.0


Handler = Callable[[Deps, jobs_db.Job, Progress], Awaitable[dict[str, Any]]]
ArqFunction = Callable[[dict[str, Any], str, str], Awaitable[None]]


def readable(exc: BaseException) -> str:
    """A one-line message for a user: the error's own text, or its type when it has none."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


def tracked(kind: jobs_db.Kind, handler: Handler) -> ArqFunction:
    """Wrap ``handler`` as the arq function for jobs of ``kind``."""

    async def run(ctx: dict[str, Any], tenant_id: str, job_id: str) -> None:
        deps: Deps = ctx["deps"]
        attempt: int = ctx["job_try"]
        tid, jid = UUID(tenant_id), UUID(job_id)
        log_ = log.bind(job_id=job_id, tenant_id=tenant_id, kind=kind, attempt=attempt)
        max_tries = deps.settings.job_max_tries
        async with tenant_tx(deps.pool, tid) as conn:
            job = await jobs_db.start(conn, jid, attempt)
            if job is not None and attempt > max_tries:
                # Only reached when workers died under it: arq re-ran it past the limit.
                await jobs_db.fail(conn, jid, f"gave up after {max_tries} tries: {job.error}")
                job = None
        if job is None:
            log_.info("job skipped: finished or unknown")
            return
        log_.info("job started")
        outcome = "completed"
        deps.metrics.running.labels(kind).inc()
        started = time.monotonic()
        try:
            async with Progress(deps.pool, job, deps.settings.job_heartbeat_interval) as progress:
                result = await handler(deps, job, progress)
            async with tenant_tx(deps.pool, tid) as conn:
                if result:
                    await jobs_db.set_result(conn, kind, jid, **result)
                await jobs_db.complete(conn, jid)
        except asyncio.CancelledError:
            outcome = "interrupted"
            # The worker is stopping (or the job timed out): arq runs it again later.
            await asyncio.shield(_settle(deps, tid, jid, "interrupted; will run again", retry=True))
            raise
        except PermanentJobError as exc:
            outcome = "failed"
            log_.warning("job failed", error=readable(exc))
            await _settle(deps, tid, jid, readable(exc), retry=False)
        except Exception as exc:
            message = readable(exc)
            outcome = "failed" if attempt >= max_tries else "retried"
            if attempt >= max_tries:
                log_.exception("job failed after its last try")
                await _settle(
                    deps, tid, jid, f"failed after {attempt} tries: {message}", retry=False
                )
                return
            delay = deps.settings.job_retry_delay * 2 ** (attempt - 1)
            log_.warning("job failed; retrying", error=message, retry_in=delay)
            await _settle(deps, tid, jid, message, retry=True)
            raise Retry(defer=delay) from exc
        else:
            log_.info("job completed")
        finally:
            deps.metrics.running.labels(kind).dec()
            deps.metrics.seconds.labels(kind).observe(time.monotonic() - started)
            deps.metrics.finished.labels(kind, outcome).inc()

    run.__name__ = run.__qualname__ = f"run_{kind}"
    return run


async def _settle(deps: Deps, tenant_id: UUID, job_id: UUID, error: str, *, retry: bool) -> None:
    async with tenant_tx(deps.pool, tenant_id) as conn:
        if retry:
            await jobs_db.requeue(conn, job_id, error)
        else:
            await jobs_db.fail(conn, job_id, error)
