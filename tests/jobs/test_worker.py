"""The job machinery on real PostgreSQL and Redis: retries that end ``failed`` with a message,
higher plans first, lost queue entries re-queued, and a worker killed mid-job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from arq.constants import job_key_prefix
from arq.jobs import JobStatus

from pocdojo.core.settings import Settings
from pocdojo.jobs.worker import RunningWorker, close_deps, open_deps, open_redis, sweep
from tests.conftest import Engines
from tests.helpers import Account, signup, wait_until
from tests.jobs.job_helpers import Client, fetch_link, wait_status
from tests.poc_helpers import create_poc, delete_poc, owner_execute, owner_fetchrow
from tests.servers import POCDOJO, cli_env, free_port

MakeClient = Callable[..., Awaitable[Client]]


async def put_template(client: Client, admin: Account, template_id: str = "hello") -> None:
    resp = await client.put(
        f"/v1/notifications/templates/{template_id}",
        headers=admin.auth,
        json={"subject": "Hi {{ name }}", "html": "<p>Hi {{ name }}</p>", "text": "Hi {{ name }}"},
    )
    assert resp.status in (200, 201), await resp.text()


async def send(client: Client, admin: Account, recipients: list[str]) -> str:
    resp = await client.post(
        "/v1/notifications/email",
        headers=admin.auth,
        json={"recipients": recipients, "templateId": "hello", "data": {"name": "Ada"}},
    )
    assert resp.status == 202, await resp.text()
    notification_id: str = (await resp.json())["notificationId"]
    return notification_id


@pytest.mark.timeout(60)
async def test_a_job_that_keeps_failing_ends_failed_with_its_message(
    make_client: MakeClient,
) -> None:
    closed = free_port()  # nothing listens: every try fails to connect
    client = await make_client(
        worker=True,
        email_backend="smtp",
        smtp_url=f"smtp://127.0.0.1:{closed}",
        job_max_tries=3,
        job_retry_delay=0.05,
    )
    admin = await signup(client)
    await put_template(client, admin)
    note_id = await send(client, admin, ["someone@example.com"])
    status = await wait_status(client, admin, f"/v1/notifications/{note_id}")
    assert status["status"] == "failed"
    assert status["attempts"] == 3
    assert status["error"].startswith("failed after 3 tries: ")
    assert len(status["error"]) > len("failed after 3 tries: ")
    assert status["messageIds"] == {}
    metrics = await (await client.get("/metrics")).text()
    assert 'pocdojo_jobs_total{kind="email",outcome="retried"} 2.0' in metrics
    assert 'pocdojo_jobs_total{kind="email",outcome="failed"} 1.0' in metrics
    assert 'pocdojo_jobs_running{kind="email"} 0.0' in metrics


@pytest.mark.timeout(60)
async def test_higher_plans_are_taken_first(make_client: MakeClient, settings: Settings) -> None:
    client = await make_client()  # no worker yet: the queue fills first
    standard = await signup(client, plan="standard")
    premium = await signup(client, plan="premium")
    enterprise = await signup(client, plan="enterprise")
    queued: dict[str, list[str]] = {}
    for account in (standard, premium, enterprise):
        await put_template(client, account)
    for account in (standard, premium, enterprise):
        queued[account.tenant_id] = [
            await send(client, account, [f"r{i}@example.com"]) for i in range(3)
        ]
    running = RunningWorker(settings.model_copy(update={"worker_concurrency": 1}), burst=True)
    running.start()
    await asyncio.wait_for(running.wait(), 45)
    await running.stop()

    started: dict[str, list[datetime]] = {}
    for account in (standard, premium, enterprise):
        for note_id in queued[account.tenant_id]:
            status = await wait_status(client, account, f"/v1/notifications/{note_id}", within=5)
            assert status["status"] == "sent", status
        row = await owner_fetchrow(
            settings.require_database_url(),
            "SELECT array_agg(started_at ORDER BY started_at) AS s FROM jobs WHERE tenant_id = $1",
            account.tenant_id,
        )
        started[account.tenant_id] = row["s"]
    assert max(started[enterprise.tenant_id]) < min(started[premium.tenant_id])
    assert max(started[premium.tenant_id]) < min(started[standard.tenant_id])


@pytest.mark.timeout(60)
async def test_a_job_whose_queue_entry_was_lost_is_queued_again(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    admin = await signup(client)
    await put_template(client, admin)
    note_id = await send(client, admin, ["lost@example.com"])
    redis = open_redis(settings)
    deps = await open_deps(settings, redis)
    try:
        # Redis loses the entry (a flush, a failover without persistence).
        await redis.zrem(settings.job_queue, f"email:{note_id}")
        await redis.delete(job_key_prefix + f"email:{note_id}")
        assert await deps.queue.status("email", UUID(note_id)) is JobStatus.not_found
        assert await sweep(deps, redis) == 0  # not quiet long enough yet
        await owner_execute(
            settings.require_database_url(),
            "UPDATE jobs SET created_at = now() - interval '1 hour' WHERE id = $1::uuid",
            note_id,
        )
        assert await sweep(deps, redis) == 1
        assert await deps.queue.status("email", UUID(note_id)) is JobStatus.queued
        assert await sweep(deps, redis) == 0  # queued now: left alone
    finally:
        await close_deps(deps)
        await redis.aclose()
    running = RunningWorker(settings, burst=True)
    running.start()
    await asyncio.wait_for(running.wait(), 30)
    await running.stop()
    status = await wait_status(client, admin, f"/v1/notifications/{note_id}", within=5)
    assert status["status"] == "sent"
    assert list(status["messageIds"]) == ["lost@example.com"]


async def test_the_worker_prunes_title_words_of_deleted_pocs(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()
    admin = await signup(client)
    await create_poc(client, admin, title="Quokka telemetry")
    gone = await create_poc(client, admin, title="Quokka xylophone")
    await delete_poc(client, admin, gone["pocId"])
    words = "SELECT array_agg(word ORDER BY word) FROM poc_title_words WHERE tenant_id = $1::uuid"
    url = settings.require_database_url()
    assert (await owner_fetchrow(url, words, admin.tenant_id))[0] == [
        "quokka", "telemetry", "xylophone"
    ]  # fmt: skip

    async def pruned() -> bool:
        return "xylophone" not in (await owner_fetchrow(url, words, admin.tenant_id))[0]

    # Every tenant of the suite's database is pruned, a batch of them per run.
    running = RunningWorker(settings.model_copy(update={"title_words_prune_interval": 0.1}))
    running.start()
    try:
        await wait_until(pruned, within=15)
    finally:
        await running.stop()
    assert (await owner_fetchrow(url, words, admin.tenant_id))[0] == ["quokka", "telemetry"]


@contextmanager
def worker_process(
    settings: Settings, engines: Engines, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``pocdojo worker`` as a real process on the suite's engines and the test's data dir."""
    env = cli_env(
        DATABASE_URL=engines.database_url,
        REDIS_URL=engines.redis_url,
        JWT_SECRET=settings.require_jwt_secret(),
        DATA_DIR=str(settings.data_dir),
        JOB_QUEUE=settings.job_queue,
        JOB_HEARTBEAT_INTERVAL="0.3",
        JOB_STALL_AFTER="2",
        WORKER_CONCURRENCY="1",
        LOG_LEVEL="INFO",
    )
    if engines.database_app_url:
        env["DATABASE_APP_URL"] = engines.database_app_url
    with log.open("ab") as out:
        proc = subprocess.Popen([str(POCDOJO), "worker"], env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _insert_pocs(database_url: str, account: Account, count: int) -> None:
    await owner_execute(
        database_url,
        "INSERT INTO pocs (id, tenant_id, user_id, title, description, language, tags) "
        "SELECT gen_random_uuid(), $1::uuid, $2::uuid, 'Bulk POC ' || i, "
        "repeat('A description that wraps. ', 8), "
        "(ARRAY['Python','Go','Rust','Java'])[1 + i % 4], ARRAY['bulk', 'tag' || (i % 30)] "
        "FROM generate_series(1, $3) AS i",
        account.tenant_id,
        account.user_id,
        count,
    )


@pytest.mark.timeout(180)
async def test_a_worker_killed_mid_job_leaves_it_retried(
    make_client: MakeClient, settings: Settings, engines: Engines, tmp_path: Path
) -> None:
    client = await make_client()
    admin = await signup(client)
    await _insert_pocs(engines.database_url, admin, KILL_TEST_POCS)
    resp = await client.post(
        "/v1/reports/generate",
        headers=admin.auth,
        json={
            "reportType": "detailed",
            "format": "pdf",
            "dateRange": {
                "startDate": str((datetime.now(UTC) - timedelta(days=30)).date()),
                "endDate": str(datetime.now(UTC).date()),
            },
        },
    )
    assert resp.status == 202, await resp.text()
    path = f"/v1/reports/{(await resp.json())['reportId']}/status"
    log = tmp_path / "worker.log"
    with worker_process(settings, engines, log) as first:
        await wait_status(client, admin, path, until=("processing",), within=60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    killed = await wait_status(client, admin, path, until=("processing", "queued"), within=5)
    assert killed["attempts"] == 1
    with worker_process(settings, engines, log):
        done = await wait_status(client, admin, path, within=150)
    assert done["status"] == "completed", (done, log.read_text()[-3000:])
    assert done["attempts"] == 2
    assert done["pocCount"] == KILL_TEST_POCS
    code, _, data = await fetch_link(client, done["downloadUrl"])
    assert code == 200
    assert data.startswith(b"%PDF")


KILL_TEST_POCS = 5_000
