"""The arq worker: job functions, the resources they share, and the stalled-job sweeper.

``pocdojo worker`` runs one on its own; ``pocdojo serve`` runs one in-process unless told not
to. Both take the same ``Settings``.

A worker killed mid-job leaves the job's arq entry marked in progress until arq's own timeout
(the job timeout, by default half an hour). The sweeper does better: a ``processing`` job whose
heartbeat has been quiet for ``job_stall_after`` seconds has lost its worker, so its in-progress
mark is dropped and the next free worker runs it again as its next try. A ``queued`` job with
no queue entry at all (Redis was down when it was created, or lost its data) is queued again.

Every ``title_words_prune_interval`` seconds the worker also prunes the tenants' title words
(what the typo-tolerant name search compares names with) of words no live title holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.jobs import JobStatus
from arq.worker import Worker, func
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import open_pool, tenant_tx
from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db import tenants as tenants_db
from pocdojo.core.jobqueue import JobQueue, arq_job_id
from pocdojo.core.objectstore import open_store
from pocdojo.core.periodic import Periodic
from pocdojo.core.settings import Settings
from pocdojo.jobs import emails, recordings, replays, reports, videos
from pocdojo.jobs.runtime import Deps, JobMetrics, tracked

log = structlog.get_logger(__name__)

HANDLERS = {
    "report": reports.make_report,
    "video": videos.make_video,
    "email": emails.send,
    "recording": recordings.mix_recording,
    "replay_video": replays.make_replay_video,
}


def open_redis(settings: Settings) -> ArqRedis:
    """An arq-capable Redis client (arq's client is redis-py's, with queue methods)."""
    redis: ArqRedis = ArqRedis.from_url(
        settings.require_job_redis_url(), socket_timeout=5, socket_connect_timeout=2
    )
    return redis


async def open_deps(settings: Settings, redis: ArqRedis, metrics: JobMetrics | None = None) -> Deps:
    """Open what job functions need (a small database pool of their own, the object store)."""
    app_url = settings.database_app_url
    pool = await open_pool(
        settings.require_database_url(),
        app_url.get_secret_value() if app_url else None,
        min_size=1,
        max_size=max(2, settings.worker_concurrency + 1),
    )
    store = open_store(settings)
    return Deps(
        settings=settings,
        pool=pool,
        store=store,
        queue=JobQueue(redis, settings.job_queue),
        metrics=metrics or JobMetrics(CollectorRegistry()),
    )


async def close_deps(deps: Deps) -> None:
    if deps.email is not None:
        await deps.email.close()
    await deps.store.close()
    await deps.pool.close()


async def sweep(deps: Deps, redis: ArqRedis) -> int:
    """Release or re-queue jobs that stopped moving; returns how many were acted on."""
    settings = deps.settings
    async with tenant_tx(deps.pool, None) as conn:
        stalled = await jobs_db.stalled(conn, settings.job_stall_after)
    acted = 0
    for job in stalled:
        try:
            acted += await _sweep_one(deps, redis, job)
        except (RedisError, OSError, asyncpg.PostgresError) as exc:
            log.warning("sweeper could not check a job", job_id=str(job.id), error=str(exc))
    return acted


# Tenants whose title words one run of the pruner prunes (about 20 ms each at 10,000 POCs):
# a stopping worker waits for the run in progress, so a run is kept short.
PRUNE_BATCH = 20


async def prune_title_words(
    pool: asyncpg.Pool, *, after: UUID | None = None, batch: int = PRUNE_BATCH
) -> tuple[int, UUID | None]:
    """Prune the title words of the next ``batch`` tenants after ``after`` (by id), a tenant
    per transaction. Returns how many words went and the last tenant pruned, to go on from,
    or None once no tenant is left."""
    async with tenant_tx(pool, None) as conn:
        tenants = await pocs_db.title_word_tenants(conn, after, batch)
    removed = 0
    for tenant_id in tenants:
        try:
            async with tenant_tx(pool, tenant_id) as conn:
                removed += await pocs_db.prune_title_words(conn)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("could not prune title words", tenant=str(tenant_id), error=str(exc))
    if removed:
        log.info("title words pruned", words=removed, tenants=len(tenants))
    return removed, tenants[-1] if tenants else None


async def _sweep_one(deps: Deps, redis: ArqRedis, job: jobs_db.Stalled) -> int:
    status = await deps.queue.status(job.kind, job.id)
    if status in (JobStatus.queued, JobStatus.deferred):
        return 0  # waiting its turn
    if status is JobStatus.in_progress:
        if job.status != "processing":
            return 0
        # arq thinks a worker runs it, but no worker has beaten for it: that worker is gone.
        await redis.delete(in_progress_key_prefix + arq_job_id(job.kind, job.id))
        log.warning("stalled job released for another worker", job_id=str(job.id))
        return 1
    # No queue entry at all: queue it again, or give up if it has had all its tries.
    async with tenant_tx(deps.pool, job.tenant_id) as conn:
        if job.attempts >= deps.settings.job_max_tries:
            await jobs_db.fail(
                conn, job.id, f"gave up after {job.attempts} tries: its worker stopped"
            )
            return 1
        tenant = await tenants_db.get(conn, job.tenant_id)
    plan = tenant.plan if tenant is not None else "standard"
    kind: Any = job.kind
    if await deps.queue.enqueue(kind, job.tenant_id, job.id, plan=plan, attempt=job.attempts + 1):
        log.warning("lost job queued again", job_id=str(job.id), attempts=job.attempts)
        return 1
    return 0


def build_worker(
    settings: Settings,
    redis: ArqRedis,
    *,
    burst: bool = False,
    metrics: JobMetrics | None = None,
) -> Worker:
    """An arq worker for ``settings.job_queue`` on ``redis``; call inside a running loop.

    Args:
        settings: the resolved settings.
        redis: the worker's own Redis client (it is closed with the worker).
        burst: stop once the queue is empty.
        metrics: where job metrics go (the server's registry, for an in-process worker).
    """

    async def startup(ctx: dict[str, Any]) -> None:
        deps = await open_deps(settings, redis, metrics)
        ctx["deps"] = deps

        async def run_sweep() -> None:
            await sweep(deps, redis)

        after: UUID | None = None

        async def run_prune() -> bool:
            """A batch of tenants; True (run again at once) until the pass has seen them all."""
            nonlocal after
            _, after = await prune_title_words(deps.pool, after=after)
            return after is not None

        sweeper = Periodic("job-sweeper", settings.job_stall_after / 2, run_sweep)
        pruner = Periodic("title-words", settings.title_words_prune_interval, run_prune)
        sweeper.start()
        pruner.start()
        ctx["periodic"] = [sweeper, pruner]

    async def shutdown(ctx: dict[str, Any]) -> None:
        for periodic in ctx.get("periodic", []):
            await periodic.stop()
        if "deps" in ctx:
            await close_deps(ctx["deps"])

    functions = [
        func(
            tracked(kind, handler),  # type: ignore[arg-type]
            name=f"run_{kind}",
            max_tries=settings.job_max_tries + 1,  # past our limit, ``tracked`` fails it
            timeout=settings.job_timeout,
            keep_result=0,  # the row in PostgreSQL is the result; the id stays reusable
        )
        for kind, handler in HANDLERS.items()
    ]
    return Worker(
        functions=functions,
        queue_name=settings.job_queue,
        redis_pool=redis,
        burst=burst,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=False,
        max_jobs=settings.worker_concurrency,
        job_timeout=settings.job_timeout,
        poll_delay=0.2,
        health_check_interval=60,
    )


class RunningWorker:
    """A worker run as a task of the current loop, restarted if it dies (e.g. Redis is down
    when it starts); ``stop`` lets running jobs go back to the queue and closes everything."""

    def __init__(
        self,
        settings: Settings,
        *,
        burst: bool = False,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._settings = settings
        # Created once: a metric cannot be registered twice in one registry across restarts.
        self._metrics = JobMetrics(registry or CollectorRegistry())
        self._burst = burst
        self._worker: Worker | None = None
        self._redis: ArqRedis | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="arq-worker")

    async def wait(self) -> None:
        """Until the worker ends (burst mode) or the task is cancelled."""
        if self._task is not None:
            await self._task

    async def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping:
            self._redis = open_redis(self._settings)
            worker = build_worker(
                self._settings, self._redis, burst=self._burst, metrics=self._metrics
            )
            self._worker = worker
            worker.main_task = asyncio.current_task()
            try:
                await worker.main()
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception:
                log.exception("job worker stopped; restarting", retry_in=delay)
                await self._close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                return  # burst mode: the queue is empty

    async def _close(self) -> None:
        """What ``Worker.close`` does, closing Redis with ``aclose`` (its ``close`` is
        deprecated in redis-py 5): running jobs are cancelled, and arq queues them again."""
        worker, redis = self._worker, self._redis
        self._worker = self._redis = None
        if worker is None or redis is None:
            return
        worker.handle_sig(signal.SIGUSR1)
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await redis.delete(worker.health_check_key)
        if worker.on_shutdown is not None:
            await worker.on_shutdown(worker.ctx)
        await redis.aclose()

    def stop_picking(self) -> None:
        """Take no new job (the node is stopping); running ones go on."""
        if self._worker is not None:
            self._worker.allow_pick_jobs = False

    async def finish(self, within: float) -> None:
        """Stop: running jobs get ``within`` seconds to finish; those still running then go
        back to the queue, for another worker."""
        self._stopping = True
        self.stop_picking()
        worker = self._worker
        running = [] if worker is None else [t for t in worker.tasks.values() if not t.done()]
        if running:
            log.info("waiting for running jobs", jobs=len(running), within=within)
            await asyncio.wait(running, timeout=within)
        await self.stop()

    async def stop(self) -> None:
        self._stopping = True
        await self._close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
