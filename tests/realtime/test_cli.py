"""The ``pocdojo`` console script, run for real as a subprocess.

``serve`` starts what is not configured (PostgreSQL and Valkey under the data directory), stops
it all on Ctrl-C, and finds its data and JWT secret again on the next start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pocdojo.cluster import pid_alive
from pocdojo.core.db.migrate import load_migrations
from pocdojo.core.settings import JWT_SECRET_FILE
from tests.conftest import TEST_JWT_SECRET, Engines
from tests.helpers import PASSWORD, unique
from tests.servers import (
    POCDOJO,
    START_TIMEOUT,
    call,
    cli_env,
    free_port,
    pid_in,
    port_open,
    postgres_running,
    serving,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """The data directory of one test; engines a failed test left running are stopped."""
    path = tmp_path / "data"
    yield path
    for pid_file in (path / "postgres" / "postmaster.pid", path / "valkey" / "valkey.pid"):
        pid = pid_in(pid_file)
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(POCDOJO), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def signup_body(domain: str, username: str) -> dict[str, Any]:
    return {
        "name": "Restart Labs",
        "domain": domain,
        "contactEmail": f"ops@{domain}",
        "plan": "standard",
        "admin": {
            "username": username,
            "email": f"{username}@{domain}",
            "fullName": "Ada Admin",
            "password": PASSWORD,
        },
    }


def test_serve_embedded_stops_on_ctrl_c_and_restarts_with_its_data(
    tmp_path: Path, data_dir: Path
) -> None:
    env = cli_env()
    domain, username = f"{unique('d')}.example", unique("admin")

    with serving(data_dir, env, tmp_path / "first") as server:
        server.wait_until_healthy()
        out = server.stdout
        assert f"started PostgreSQL (data in {data_dir.resolve() / 'postgres'})" in out
        assert "started Valkey at redis://127.0.0.1:" in out
        assert f"listening on http://127.0.0.1:{server.port}" in out
        assert "started nothing" not in out
        assert "applied migrations: " in out
        valkey_port = int(out.split("started Valkey at redis://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert port_open(valkey_port)

        status, created = call(server.port, "POST", "/v1/tenants", signup_body(domain, username))
        assert status == 201, created
        status, session = call(
            server.port,
            "POST",
            "/v1/auth/login",
            {"username": username, "password": PASSWORD, "tenantId": domain},
        )
        assert status == 200, session
        status, ready = call(server.port, "GET", "/readyz")
        assert (status, ready["status"]) == (200, "ok")

        assert server.interrupt() == 0, server.output()
        assert server.stdout.rstrip().endswith("stopped")
        assert not postgres_running(data_dir)
        assert not port_open(valkey_port)
        # Logs are JSON lines on stderr, one per request.
        lines = [json.loads(line) for line in server.stderr.splitlines() if "/v1/tenants" in line]
        assert [(line["method"], line["status"]) for line in lines] == [("POST", 201)]

    secret = (data_dir / JWT_SECRET_FILE).read_text()
    with serving(data_dir, env, tmp_path / "second") as server:
        server.wait_until_healthy()
        assert "applied migrations" not in server.stdout
        assert (data_dir / JWT_SECRET_FILE).read_text() == secret

        # The access token from the first run still works: same data, same signing secret.
        status, me = call(server.port, "GET", "/v1/users/me", token=session["token"])
        assert status == 200, me
        assert me["userId"] == created["admin"]["userId"]
        status, again = call(
            server.port,
            "POST",
            "/v1/auth/login",
            {"username": username, "password": PASSWORD, "tenantId": created["tenantId"]},
        )
        assert status == 200, again
        assert again["userId"] == created["admin"]["userId"]

        assert server.interrupt() == 0, server.output()
        assert not postgres_running(data_dir)


def test_serve_with_configured_engines_starts_nothing(
    tmp_path: Path, data_dir: Path, engines: Engines
) -> None:
    env = cli_env(
        DATABASE_URL=engines.database_url,
        REDIS_URL=engines.redis_url,
        JWT_SECRET=TEST_JWT_SECRET,
    )
    with serving(data_dir, env, tmp_path / "logs") as server:
        server.wait_until_healthy()
        out = server.stdout
        assert "started nothing" in out
        assert "started PostgreSQL" not in out
        assert "started Valkey" not in out
        assert f"listening on http://127.0.0.1:{server.port}" in out
        assert not (data_dir / "postgres").exists()
        assert not (data_dir / "valkey").exists()
        assert not (data_dir / JWT_SECRET_FILE).exists()

        status, ready = call(server.port, "GET", "/readyz")
        assert status == 200, ready
        assert ready["checks"] == {"database": "ok", "redis": "ok"}
        # What aiohttp's own parser refuses is answered in the error shape too.
        status, refused = call(server.port, "GET", "/healthz?q=" + "a" * 9000)
        assert status == 400, refused
        assert refused["error"]["code"] == "bad_request"
        assert server.interrupt() == 0, server.output()
        assert "Traceback" not in server.stderr, server.output()


def test_serve_with_external_database_needs_jwt_secret(
    tmp_path: Path, data_dir: Path, engines: Engines
) -> None:
    env = cli_env(DATABASE_URL=engines.database_url)
    result = run_cli("serve", "--data-dir", str(data_dir), "--port", str(free_port()), env=env)
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout
    assert not (data_dir / "postgres").exists()
    # The Valkey it started for the missing REDIS_URL was stopped again.
    pid = pid_in(data_dir / "valkey" / "valkey.pid")
    assert pid is None or not pid_alive(pid)


def test_serve_refuses_an_invalid_setting(data_dir: Path) -> None:
    env = cli_env(ACCESS_TOKEN_TTL="forever")
    result = run_cli("serve", "--data-dir", str(data_dir), env=env)
    assert result.returncode != 0
    assert "ACCESS_TOKEN_TTL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()


def test_migrate_twice_is_idempotent(data_dir: Path) -> None:
    env = cli_env()
    expected = ", ".join(f"{m.version:04d}_{m.name}" for m in load_migrations())

    first = run_cli("migrate", "--data-dir", str(data_dir), env=env)
    assert first.returncode == 0, first.stderr
    assert f"applied migrations: {expected}" in first.stdout
    assert "database is up to date" in first.stdout
    assert not postgres_running(data_dir)

    second = run_cli("migrate", "--data-dir", str(data_dir), env=env)
    assert second.returncode == 0, second.stderr
    assert "applied migrations" not in second.stdout
    assert "database is up to date" in second.stdout
    assert not postgres_running(data_dir)
