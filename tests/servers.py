"""Running ``pocdojo serve`` for real, as a subprocess, from tests."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pocdojo.cluster import pid_alive
from pocdojo.core.netports import free_ports
from pocdojo.core.settings import Settings

POCDOJO = Path(sys.executable).parent / "pocdojo"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0


def free_port() -> int:
    """A free loopback port, outside the ephemeral range (see ``pocdojo.core.ports``)."""
    (port,) = free_ports(1)
    return port


def cli_env(**variables: str) -> dict[str, str]:
    """The suite's environment without any pocdojo setting, plus ``variables``."""
    fields = set(Settings.model_fields)
    env = {k: v for k, v in os.environ.items() if k.lower() not in fields}
    env.update(
        PYTHONUNBUFFERED="1",
        # Cheap password hashing keeps signup and login fast; it is not under test here.
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
        # Tests sign up and log in from 127.0.0.1 against one shared Redis (schemathesis and
        # the attack suite fail many logins); the limits are tested elsewhere.
        SIGNUP_LIMIT_IP="100000",
        LOGIN_FAIL_LIMIT_IP="100000",
    )
    env.update(variables)
    return env


def pid_in(path: Path) -> int | None:
    """The pid on the first line of a pid file, if the file exists."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except FileNotFoundError:
        return None
    return int(first) if first.isdigit() else None


def postgres_running(data_dir: Path) -> bool:
    pid = pid_in(data_dir / "postgres" / "postmaster.pid")
    return pid is not None and pid_alive(pid)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def call(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One HTTP request to the server; the status and the decoded JSON body."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


@dataclass
class Server:
    """A ``pocdojo serve`` process and where its output goes."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def output(self) -> str:
        return f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"

    def wait_until_healthy(self) -> None:
        """Poll /healthz until it answers; fail at once if the process exits."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                status, _ = call(self.port, "GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            # Waiting on the process doubles as the poll interval and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(timeout=0.2)
                pytest.fail(f"pocdojo serve exited with {code} before answering\n{self.output()}")
        pytest.fail(f"pocdojo serve did not answer within {START_TIMEOUT}s\n{self.output()}")

    def interrupt(self) -> int:
        """Ctrl-C, and the exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def serving(
    data_dir: Path, env: dict[str, str], logs: Path, port: int | None = None
) -> Iterator[Server]:
    """Start ``pocdojo serve`` (on ``port``, or a free one); whatever happens, leave nothing
    running."""
    port = port or free_port()
    logs.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = logs / "stdout.txt", logs / "stderr.txt"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(POCDOJO), "serve", "--data-dir", str(data_dir), "--port", str(port)],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(proc, port, data_dir, stdout_path, stderr_path)
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
