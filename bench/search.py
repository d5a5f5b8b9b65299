"""Search benchmark: POC search latency through the real HTTP server, next to the same SQL.

What it measures: for each query type (partial name, language, tag, full text, combined with
facets and popularity sort, suggestions, one POC by id) and each ``--concurrency`` level
(default 4, then 16: twice and eight times the cores of the reference machine), that many
workers send requests for ``--duration`` seconds after ``--warmup`` seconds, first over HTTP to
a real ``pocdojo serve`` process, then directly in SQL: the statement ``build_search`` builds
(the one the server runs), in a pool opened like the server's (``open_pool``, role
``pocdojo_app``, so row-level security applies) inside ``tenant_tx``. Both sides draw the same
parameter streams from the same seeded generators. It prints requests, errors, req/s and
p50/p95/p99 per side, the HTTP/SQL ratios, flags HTTP p95 above the 50 ms target, and says per
level whether every query type met it.

Data: ``--pocs`` realistic POCs spread over ``--tenants`` enterprise tenants of 20 users each,
seeded once under ``--data-dir`` (embedded PostgreSQL and Valkey live there too) and reused by
later runs asking for the same sizes.

Run it from the repository root (one command; the first 1M seed takes a while)::

    .venv/bin/python bench/search.py                      # 1M POCs, 100 tenants
    .venv/bin/python bench/search.py --pocs 20000 --tenants 10 --duration 5 --warmup 1

With ``--database-url`` (the schema owner) and ``--redis-url`` it uses those engines instead;
only tenants whose domain matches ``bench-*.example`` are ever written or wiped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import shlex
import signal
import socket
import string
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import aiohttp
import asyncpg
from _common import (
    ADMIN_USERNAME,
    FEATURE_WORDS,
    PASSWORD,
    POC_COLUMNS,
    TECH_WORDS,
    TEXT_WORDS,
    TITLE_WORDS,
    USERS_PER_TENANT,
    BenchTenant,
    PocFactory,
    bench_tenants,
    percentiles,
    pick_language,
    pick_tags,
    tenant_row,
    user_row,
    words_of,
)
from argon2 import PasswordHasher
from tqdm import tqdm

from pocdojo.core.db import open_pool, tenant_tx
from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db.migrate import migrate
from pocdojo.core.embedded import embedded_engines
from pocdojo.core.logging import configure_logging
from pocdojo.core.search import PocQuery, Sort
from pocdojo.core.search.postgres import PostgresSearch, build_search
from pocdojo.core.settings import Settings

TARGET_P95_MS = 50.0
SEED = 20_240_601
BATCH = 5_000
VALIDATION_CALLS = 10  # per query type, compared HTTP against SQL before measuring
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
BENCH_DOMAINS = "bench-%.example"


def log(message: str) -> None:
    """Progress goes to stderr; the report alone goes to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Options ---------------------------------------------------------------------------------


def levels(text: str) -> list[int]:
    """``"4,16"`` -> [4, 16]: concurrency levels, each at least 1."""
    try:
        found = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not found or min(found) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be at least 1")
    return found


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark POC search over HTTP against the same SQL run directly.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--pocs", type=int, default=1_000_000, help="POCs in the data set")
    parser.add_argument("--tenants", type=int, default=100, help="tenants sharing them")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".bench/search"),
        help="embedded engines, data and server log (reused across runs)",
    )
    parser.add_argument(
        "--concurrency",
        type=levels,
        default="4,16",
        help="concurrent workers; several levels (comma-separated) run one after the other",
    )
    parser.add_argument(
        "--kinds",
        type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
        default=[k.name for k in KINDS],
        help="query types to run (comma-separated)",
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before measuring")
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    parser.add_argument("--database-url", help="external PostgreSQL, as the schema owner")
    parser.add_argument("--database-app-url", help="external login as pocdojo_app (optional)")
    parser.add_argument("--redis-url", help="external Redis or Valkey")
    args = parser.parse_args(argv)
    if args.pocs < 1 or args.tenants < 1 or args.duration <= 0:
        parser.error("--pocs, --tenants, --concurrency and --duration must be positive")
    unknown = set(args.kinds) - {k.name for k in KINDS}
    if unknown or not args.kinds:
        parser.error(f"--kinds: choose among {', '.join(k.name for k in KINDS)}")
    return args


# --- Engines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Urls:
    owner: str
    app: str | None
    redis: str


@contextlib.contextmanager
def engines(args: argparse.Namespace, data_dir: Path) -> Iterator[Urls]:
    """The configured engines, or embedded ones under ``data_dir`` (stopped on exit)."""
    with embedded_engines(
        data_dir, postgres=not args.database_url, valkey=not args.redis_url
    ) as started:
        for line in started.started:
            log(f"started {line}")
        owner = args.database_url or started.database_url
        app = args.database_app_url if args.database_url else started.database_app_url
        redis = args.redis_url or started.redis_url
        assert owner
        assert redis
        yield Urls(owner, app, redis)


def pool_max() -> int:
    """The server's pool size (``DB_POOL_MAX``), so the SQL side gets the same."""
    return Settings().db_pool_max


# --- Seed ------------------------------------------------------------------------------------


@dataclass
class DataInfo:
    seeded_now: bool
    seed_seconds: float | None
    vacuum_seconds: float | None
    pg_version: str
    shared_buffers: str
    pocs_size: str
    distinct_titles: int
    distinct_tags: int
    pocs: dict[UUID, list[Sample]] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """A live POC, to read by id or to build a combined search that finds it."""

    id: UUID
    title: str
    language: str
    tags: list[str]


async def holds_expected(conn: asyncpg.Connection, tenants: list[BenchTenant], pocs: int) -> bool:
    """True when the bench tenants, their users and exactly ``pocs`` POCs are there."""
    ids = [t.id for t in tenants]
    found = await conn.fetchval(
        "SELECT count(*) FROM tenants WHERE lower(domain) LIKE $1", BENCH_DOMAINS
    )
    expected = await conn.fetchval("SELECT count(*) FROM tenants WHERE id = ANY($1)", ids)
    if found != len(tenants) or expected != len(tenants):
        return False
    users = await conn.fetchval("SELECT count(*) FROM users WHERE tenant_id = ANY($1)", ids)
    held = await conn.fetchval("SELECT count(*) FROM pocs WHERE tenant_id = ANY($1)", ids)
    return bool(users == len(tenants) * USERS_PER_TENANT and held == pocs)


async def wipe(conn: asyncpg.Connection) -> None:
    """Delete every bench tenant and what it owns (and nothing else)."""
    scope = "tenant_id IN (SELECT id FROM tenants WHERE lower(domain) LIKE $1)"
    async with conn.transaction():
        # Tag counts go with their tenants, so the per-row trigger is not needed here; the
        # ALTER holds its lock until commit, so no other session ever sees it disabled.
        await conn.execute("ALTER TABLE pocs DISABLE TRIGGER pocs_count_tags")
        for table in (
            "favorites",
            "search_outbox",
            "pocs",
            "poc_tags",
            "audit_log",
            "refresh_tokens",
            "auth_sessions",
            "users",
        ):
            await conn.execute(f"DELETE FROM {table} WHERE {scope}", BENCH_DOMAINS)
        await conn.execute("DELETE FROM tenants WHERE lower(domain) LIKE $1", BENCH_DOMAINS)
        await conn.execute("ALTER TABLE pocs ENABLE TRIGGER pocs_count_tags")


async def insert_people(conn: asyncpg.Connection, tenants: list[BenchTenant]) -> None:
    """Tenants on the enterprise plan and their users, all with one argon2id hash."""
    limits = Settings()
    hasher = PasswordHasher(
        time_cost=limits.argon2_time_cost,
        memory_cost=limits.argon2_memory_kib,
        parallelism=limits.argon2_parallelism,
    )
    password_hash = hasher.hash(PASSWORD)
    await conn.executemany(
        """INSERT INTO tenants (id, name, domain, contact_email, plan, max_users, max_pocs,
                                features)
           VALUES ($1, $2, $3, $4, $5, 100000, 10000000,
                   '{dojos,voice,recording,reports,videos,search,notifications}')""",
        [tenant_row(t) for t in tenants],
    )
    await conn.copy_records_to_table(
        "users",
        records=[user_row(t, u, password_hash) for t in tenants for u in t.users],
        columns=("id", "tenant_id", "username", "email", "full_name", "password_hash", "role"),
    )


async def insert_pocs(conn: asyncpg.Connection, tenants: list[BenchTenant], total: int) -> None:
    """COPY the POCs in batches; the next batch is built in a thread meanwhile."""
    factory = PocFactory(SEED, datetime.now(UTC))
    loop = asyncio.get_running_loop()
    starts = range(0, total, BATCH)
    with ThreadPoolExecutor(1) as builder, tqdm(total=total, unit="poc", unit_scale=True) as bar:

        def build(start: int) -> asyncio.Future[list[tuple[object, ...]]]:
            stop = min(start + BATCH, total)
            return loop.run_in_executor(builder, factory.batch, tenants, start, stop, total)

        pending = build(0)
        for start in starts:
            rows = await pending
            if start + BATCH < total:
                pending = build(start + BATCH)
            await conn.copy_records_to_table("pocs", records=rows, columns=POC_COLUMNS)
            bar.update(len(rows))


async def seed(conn: asyncpg.Connection, tenants: list[BenchTenant], pocs: int) -> float:
    log(f"seeding {pocs:,} POCs in {len(tenants)} tenants (a previous bench set is wiped)")
    started = time.perf_counter()
    await wipe(conn)
    await insert_people(conn, tenants)
    await insert_pocs(conn, tenants, pocs)
    elapsed = time.perf_counter() - started
    log(f"seeded {pocs:,} POCs in {elapsed:.1f} s ({pocs / elapsed:,.0f} POCs/s)")
    return elapsed


async def vacuum(conn: asyncpg.Connection) -> float:
    """ANALYZE, with VACUUM on the bulk-loaded tables: it flushes the GIN pending lists, sets
    hint bits and the visibility map, and clears the dead tag-count versions the trigger left,
    so autovacuum does not do it in the middle of a measurement."""
    log("VACUUM (ANALYZE) after the seed")
    started = time.perf_counter()
    for table in ("pocs", "poc_tags", "users", "tenants"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    await conn.execute("ANALYZE")
    return time.perf_counter() - started


async def sample_pocs(
    conn: asyncpg.Connection, tenants: list[BenchTenant], pocs: int
) -> dict[UUID, list[Sample]]:
    """About 20,000 live POCs (all of them below that), by tenant, in a repeatable sample."""
    percent = min(100.0, 100.0 * 20_000 / pocs)
    columns = "tenant_id, id, title, language, tags"
    rows = await conn.fetch(
        f"""SELECT {columns} FROM pocs TABLESAMPLE BERNOULLI ({percent:.4f}) REPEATABLE (42)
            WHERE tenant_id = ANY($1) AND status <> 'deleted' ORDER BY id""",
        [t.id for t in tenants],
    )
    for tenant_id in sorted({t.id for t in tenants} - {r["tenant_id"] for r in rows}):
        rows += await conn.fetch(
            f"""SELECT {columns} FROM pocs WHERE tenant_id = $1 AND status <> 'deleted'
                    ORDER BY id LIMIT 100""",
            tenant_id,
        )
    by_tenant: dict[UUID, list[Sample]] = {t.id: [] for t in tenants}
    for row in rows:
        by_tenant[row["tenant_id"]].append(
            Sample(row["id"], row["title"], row["language"], row["tags"])
        )
    return by_tenant


def seed_record(data_dir: Path) -> Path:
    return data_dir / "seed.json"


async def prepare(urls: Urls, args: argparse.Namespace, data_dir: Path) -> DataInfo:
    """Seed unless the data set is already there; describe it."""
    tenants = bench_tenants(args.tenants)
    conn = await asyncpg.connect(urls.owner)
    try:
        seeded_now, seed_s, vacuum_s = False, None, None
        if not await holds_expected(conn, tenants, args.pocs):
            seed_s = await seed(conn, tenants, args.pocs)
            vacuum_s = await vacuum(conn)
            seeded_now = True
            record = {"pocs": args.pocs, "tenants": args.tenants, "seed_seconds": seed_s}
            record["vacuum_seconds"] = vacuum_s
            seed_record(data_dir).write_text(json.dumps(record))
        elif seed_record(data_dir).exists():
            record = json.loads(seed_record(data_dir).read_text())
            if (record["pocs"], record["tenants"]) == (args.pocs, args.tenants):
                seed_s, vacuum_s = record["seed_seconds"], record["vacuum_seconds"]
        return await describe(conn, tenants, args.pocs, seeded_now, seed_s, vacuum_s)
    finally:
        await conn.close()


async def describe(
    conn: asyncpg.Connection,
    tenants: list[BenchTenant],
    pocs: int,
    seeded_now: bool,
    seed_s: float | None,
    vacuum_s: float | None,
) -> DataInfo:
    ids = [t.id for t in tenants]
    return DataInfo(
        seeded_now=seeded_now,
        seed_seconds=seed_s,
        vacuum_seconds=vacuum_s,
        pg_version=await conn.fetchval("SHOW server_version"),
        shared_buffers=await conn.fetchval("SHOW shared_buffers"),
        # pocs is partitioned: its size is its partitions' (and theirs, if any are).
        pocs_size=await conn.fetchval(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(relid))::bigint)"
            " FROM pg_partition_tree('pocs')"
        ),
        distinct_titles=await conn.fetchval(
            "SELECT count(DISTINCT title) FROM pocs WHERE tenant_id = ANY($1)", ids
        ),
        distinct_tags=await conn.fetchval(
            "SELECT count(DISTINCT tag) FROM poc_tags WHERE tenant_id = ANY($1)", ids
        ),
        pocs=await sample_pocs(conn, tenants, pocs),
    )


# --- Server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(urls: Urls, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENSEARCH_URL", "DATABASE_APP_URL")}
    env.update(
        DATABASE_URL=urls.owner,
        REDIS_URL=urls.redis,
        JWT_SECRET=secrets.token_urlsafe(36),  # 48 characters
        DATA_DIR=str(data_dir / "server"),
        LOG_LEVEL="WARNING",
        ACCESS_TOKEN_TTL="86400",
        REQUESTS_PER_MINUTE_USER="10000000",
        LOGIN_FAIL_LIMIT_IP="1000000",
        LOGIN_FAIL_LIMIT_ACCOUNT="1000000",
        SIGNUP_LIMIT_IP="1000000",
    )
    if urls.app:
        env["DATABASE_APP_URL"] = urls.app
    return env


@contextlib.contextmanager
def serving(urls: Urls, port: int, data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``pocdojo serve`` in its own session; SIGINT and a wait on exit."""
    command = [str(Path(sys.executable).with_name("pocdojo")), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log_path = data_dir / "server.log"
    with log_path.open("wb") as out:
        server = subprocess.Popen(
            command,
            env=server_env(urls, data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log(f"server pid {server.pid} on port {port} (log: {log_path})")
        try:
            yield server
        finally:
            stop(server)


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    log(f"server stopped (exit {server.returncode})")


async def wait_ready(http: aiohttp.ClientSession, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}; see its log")
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get("/readyz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {READY_TIMEOUT:.0f} s")


async def login_all(http: aiohttp.ClientSession, tenants: list[BenchTenant]) -> dict[UUID, str]:
    """An access token for each tenant's 'bench' admin (argon2 makes these slow: 4 at once)."""
    gate = asyncio.Semaphore(4)

    async def login(tenant: BenchTenant) -> tuple[UUID, str]:
        body = {"username": ADMIN_USERNAME, "password": PASSWORD, "tenantId": tenant.domain}
        async with gate, http.post("/v1/auth/login", json=body) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"login to {tenant.domain} failed: {resp.status} {data}")
            return tenant.id, str(data["token"])

    return dict(await asyncio.gather(*(login(t) for t in tenants)))


# --- Workload --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request: whose, and with which parameters."""

    tenant: BenchTenant
    params: dict[str, str]
    poc_id: UUID | None = None


@dataclass(frozen=True)
class Workload:
    tenants: list[BenchTenant]
    pocs: dict[UUID, list[Sample]]


def name_fragment(rng: random.Random) -> str:
    """3-8 letters of a title word, a quarter of them with a one-letter typo."""
    word = rng.choice(TITLE_WORDS)
    size = rng.randint(3, min(8, len(word)))
    start = rng.randint(0, len(word) - size)
    fragment = word[start : start + size]
    if rng.random() < 0.25:
        at = rng.randrange(size)
        wrong = rng.choice(string.ascii_lowercase.replace(fragment[at], ""))
        fragment = fragment[:at] + wrong + fragment[at + 1 :]
    return fragment


def text_query(rng: random.Random) -> str:
    """One word, or a technology word and a feature word."""
    if rng.random() < 0.6:
        return rng.choice(TEXT_WORDS)
    return f"{rng.choice(TECH_WORDS)} {rng.choice(FEATURE_WORDS)}"


def tag_filter(rng: random.Random) -> str:
    """One tag, sometimes two, as popular tags are clicked most (Zipf like the data)."""
    return ",".join(dict.fromkeys(pick_tags(rng, 1 if rng.random() < 0.75 else 2)))


def make_name(rng: random.Random, wl: Workload) -> Call:
    return Call(rng.choice(wl.tenants), {"name": name_fragment(rng)})


def make_language(rng: random.Random, wl: Workload) -> Call:
    return Call(rng.choice(wl.tenants), {"language": pick_language(rng)})


def make_tag(rng: random.Random, wl: Workload) -> Call:
    return Call(rng.choice(wl.tenants), {"tags": tag_filter(rng)})


def make_text(rng: random.Random, wl: Workload) -> Call:
    return Call(rng.choice(wl.tenants), {"q": text_query(rng)})


def make_combined(rng: random.Random, wl: Workload) -> Call:
    """Narrowing down to a POC that exists: a word of its title (partial name or full text),
    its language and one of its tags, most popular first."""
    tenant = rng.choice(wl.tenants)
    poc = rng.choice(wl.pocs[tenant.id])
    word = rng.choice(words_of(poc.title) or [poc.title.lower()])
    text = {"name": word[: rng.randint(3, 8)]} if rng.random() < 0.5 else {"q": word}
    filters = {"language": poc.language, "tags": rng.choice(poc.tags), "sort": "popularity"}
    return Call(tenant, {**text, **filters})


def make_suggest(rng: random.Random, wl: Workload) -> Call:
    word = rng.choice(TITLE_WORDS)
    return Call(rng.choice(wl.tenants), {"prefix": word[: rng.randint(2, min(5, len(word)))]})


def make_get(rng: random.Random, wl: Workload) -> Call:
    tenant = rng.choice(wl.tenants)
    return Call(tenant, {}, poc_id=rng.choice(wl.pocs[tenant.id]).id)


@dataclass(frozen=True)
class Kind:
    name: str
    make: Callable[[random.Random, Workload], Call]
    path: str  # "{id}" is replaced by the call's POC id


KINDS: tuple[Kind, ...] = (
    Kind("name", make_name, "/v1/pocs/search"),
    Kind("language", make_language, "/v1/pocs/search"),
    Kind("tag", make_tag, "/v1/pocs/search"),
    Kind("fulltext", make_text, "/v1/pocs/search"),
    Kind("combined", make_combined, "/v1/pocs/search"),
    Kind("suggest", make_suggest, "/v1/pocs/suggest"),
    Kind("get", make_get, "/v1/pocs/{id}"),
)


def poc_query(params: dict[str, str]) -> PocQuery:
    """The query the server builds from these parameters."""
    tags = tuple(params["tags"].split(",")) if "tags" in params else ()
    sort = cast(Sort, params.get("sort", "relevance"))
    return PocQuery(
        name=params.get("name"),
        language=params.get("language"),
        tags=tags,
        q=params.get("q"),
        sort=sort,
    )


# --- The two sides ---------------------------------------------------------------------------


class Failed(Exception):
    """A request that did not succeed; the message says how."""


Side = Callable[[Kind, Call], Awaitable[Any]]


def http_side(http: aiohttp.ClientSession, tokens: dict[UUID, str]) -> Side:
    """GET over HTTP; returns the raw body (parsed only when validating)."""

    async def once(kind: Kind, call: Call) -> bytes:
        path = kind.path.replace("{id}", str(call.poc_id))
        headers = {"Authorization": f"Bearer {tokens[call.tenant.id]}"}
        async with http.get(path, params=call.params, headers=headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise Failed(f"HTTP {resp.status}: {body[:300].decode(errors='replace')}")
            return body

    return once


def sql_side(pool: asyncpg.Pool) -> Side:
    """What the server runs for the same call, in a tenant transaction of an app pool."""
    search = PostgresSearch()

    async def once(kind: Kind, call: Call) -> Any:
        async with tenant_tx(pool, call.tenant.id) as conn:
            if kind.name == "suggest":
                return await search.suggest(conn, call.tenant.id, call.params["prefix"], 10)
            if kind.name == "get":
                assert call.poc_id is not None
                poc = await pocs_db.get(conn, call.tenant.id, call.poc_id)
                if poc is None:
                    raise Failed(f"POC {call.poc_id} not found")
                return poc
            statement, params = build_search(call.tenant.id, poc_query(call.params))
            return await conn.fetchrow(statement, *params)

    return once


def hits_of(kind: Kind, answer: Any) -> int | None:
    """How many POCs matched, for search answers from the SQL side."""
    if kind.path == "/v1/pocs/search" and isinstance(answer, asyncpg.Record):
        return int(answer["total"])
    return None


# --- Validation: HTTP and SQL must give the same answers -------------------------------------


def normal_http(kind: Kind, body: bytes) -> Any:
    data = json.loads(body)
    if kind.name == "suggest":
        return data["titles"], data["tags"]
    if kind.name == "get":
        return data["pocId"], data["title"]
    facets = data["facets"]
    return (
        data["totalCount"],
        [p["pocId"] for p in data["pocs"]],
        [[f["value"], f["count"]] for f in facets["languages"]],
        [[f["value"], f["count"]] for f in facets["tags"]],
    )


def normal_sql(kind: Kind, answer: Any) -> Any:
    if kind.name == "suggest":
        return answer.titles, answer.tags
    if kind.name == "get":
        return str(answer.id), answer.title
    return (
        answer["total"],
        [p["poc_id"] for p in answer["pocs"]],
        answer["languages"],
        answer["tags"],
    )


async def validate(wl: Workload, http: Side, sql: Side) -> list[str]:
    """Send the first calls of a dedicated stream both ways; returns the differences."""
    problems = []
    for kind in KINDS:
        rng = random.Random(f"{SEED}:validate:{kind.name}")
        for _ in range(VALIDATION_CALLS):
            call = kind.make(rng, wl)
            try:
                over_http = normal_http(kind, await http(kind, call))
                in_sql = normal_sql(kind, await sql(kind, call))
            except Failed as exc:
                problems.append(f"{kind.name} {call.params}: {exc}")
                continue
            if over_http != in_sql:
                problems.append(f"{kind.name} {call.params}: HTTP {over_http} != SQL {in_sql}")
    return problems


# --- Driving load ----------------------------------------------------------------------------


@dataclass
class Run:
    """One query type on one side."""

    seconds: float
    latencies: list[float] = field(default_factory=list)  # successful measured requests
    calls: int = 0  # warmup included
    requests: int = 0
    errors: int = 0
    hits: list[int] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)

    # CPU seconds used during the run (warmup included) by each party on the machine:
    # "server", "db" (all of PostgreSQL's processes) and "client" (this process).
    cpu: dict[str, float] = field(default_factory=dict)

    def record(self, elapsed: float, answer: Any, error: str | None, measured: bool) -> None:
        self.calls += 1
        if error is not None:
            self.messages[error if measured else f"(warmup) {error}"] += 1
        if not measured:
            return
        self.requests += 1
        if error is not None:
            self.errors += 1
            return
        self.latencies.append(elapsed)
        if isinstance(answer, int):
            self.hits.append(answer)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def cpu_ms(self, party: str) -> float:
        """``party``'s CPU per request, warmup included (nan when unknown)."""
        if party not in self.cpu or not self.calls:
            return float("nan")
        return self.cpu[party] * 1e3 / self.calls


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int | None, *, with_children: bool = False) -> float | None:
    """CPU time (user + system) a process has used, from /proc; None elsewhere. With
    ``with_children``, its child processes' too: the live ones, and those it has reaped
    (PostgreSQL's autovacuum workers come and go during a run)."""
    if pid is None or (own := _stat(pid)) is None:
        return None
    ticks = int(own[11]) + int(own[12])
    if with_children:
        ticks += int(own[13]) + int(own[14])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (child := _stat(int(entry.name))) and child[1] == str(pid):
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Parties:
    """The processes whose CPU a run accounts: the server (HTTP side only) and PostgreSQL's
    postmaster, whose children are the backends and background workers (embedded engine
    only)."""

    server: int | None = None
    postgres: int | None = None

    def cpu(self) -> dict[str, float | None]:
        return {
            "server": cpu_seconds(self.server),
            "db": cpu_seconds(self.postgres, with_children=True),
            "client": cpu_seconds(os.getpid()),
        }


def postmaster_pid(data_dir: Path) -> int | None:
    """The embedded PostgreSQL's postmaster, from its pid file (None when external)."""
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def drive(
    kind: Kind,
    side: Side,
    wl: Workload,
    args: argparse.Namespace,
    concurrency: int,
    label: str,
    parties: Parties,
) -> Run:
    """``concurrency`` workers for warmup + duration; only the last ``duration`` counts."""
    run = Run(seconds=args.duration)
    cpu_before = parties.cpu()
    begin = time.perf_counter()
    measure_from, end = begin + args.warmup, begin + args.warmup + args.duration

    async def worker(index: int) -> None:
        rng = random.Random(f"{SEED}:{kind.name}:{index}")
        while (start := time.perf_counter()) < end:
            call = kind.make(rng, wl)
            answer, error = None, None
            try:
                answer = hits_of(kind, await side(kind, call))
            except Failed as exc:
                error = str(exc)
            except Exception as exc:  # any failure is counted and reported, not fatal
                error = f"{type(exc).__name__}: {exc}"
            run.record(time.perf_counter() - start, answer, error, start >= measure_from)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    for party, after in parties.cpu().items():
        if after is not None and (before := cpu_before[party]) is not None:
            run.cpu[party] = after - before
    p50, p95, _ = percentiles(run.latencies)
    log(
        f"  x{concurrency:<3} {label:<4} {kind.name:<9} {run.requests:>7} req"
        f"  p50 {ms(p50)}  p95 {ms(p95)} ms"
    )
    return run


@dataclass
class Outcome:
    problems: list[str]
    results: dict[int, list[tuple[Kind, Run, Run]]]  # by concurrency level
    load_before: str
    load_after: str


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "unknown"


async def measure(
    args: argparse.Namespace,
    urls: Urls,
    port: int,
    parties: Parties,
    server: subprocess.Popen[bytes],
    wl: Workload,
) -> Outcome:
    connector = aiohttp.TCPConnector(limit=max(args.concurrency))
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
        await wait_ready(http, server)
        log(f"server ready; logging in {len(wl.tenants)} admins")
        tokens = await login_all(http, wl.tenants)
        pool = await open_pool(urls.owner, urls.app, max_size=pool_max())
        try:
            over_http, in_sql = http_side(http, tokens), sql_side(pool)
            problems = await validate(wl, over_http, in_sql)
            log(f"validation: {len(problems)} differences between HTTP and SQL")
            load_before = load_average()
            results: dict[int, list[tuple[Kind, Run, Run]]] = {}
            sql_parties = Parties(None, parties.postgres)  # no server on the SQL side
            for level in args.concurrency:
                for kind in (k for k in KINDS if k.name in args.kinds):
                    http_run = await drive(kind, over_http, wl, args, level, "HTTP", parties)
                    sql_run = await drive(kind, in_sql, wl, args, level, "SQL", sql_parties)
                    results.setdefault(level, []).append((kind, http_run, sql_run))
            return Outcome(problems, results, load_before, load_average())
        finally:
            await pool.close()


# --- Report ----------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.2f}"


def side_cells(run: Run) -> str:
    p50, p95, p99 = percentiles(run.latencies)
    return f"{run.requests:>7} {run.errors:>4} {run.rate:>7.0f} {ms(p50)} {ms(p95)} {ms(p99)}"


def result_line(kind: Kind, http_run: Run, sql_run: Run) -> str:
    h50, h95, _ = percentiles(http_run.latencies)
    s50, s95, _ = percentiles(sql_run.latencies)
    hits = sorted(sql_run.hits)
    median_hits = f"{hits[len(hits) // 2]:>8}" if hits else f"{'-':>8}"
    flag = "" if meets_target(http_run) else "  *"
    return (
        f"{kind.name:<9}| {side_cells(http_run)} | {side_cells(sql_run)} |"
        f" {h50 / s50:5.1f} {h95 / s95:5.1f} |{median_hits} |"
        f"{http_run.cpu_ms('server'):7.2f} {http_run.cpu_ms('db'):5.2f}"
        f" {http_run.cpu_ms('client'):6.2f} |{sql_run.cpu_ms('db'):5.2f}"
        f" {sql_run.cpu_ms('client'):6.2f}{flag}"
    )


def header_lines() -> list[str]:
    side = f"{'req':>7} {'err':>4} {'req/s':>7} {'p50':>7} {'p95':>7} {'p99':>7}"
    top = (
        f"{'':<9}| {'HTTP (ms)':^46} | {'SQL (ms)':^46} | {'HTTP/SQL':^11} |{'':8} |"
        f"{'CPU ms/req, HTTP':^20}|{'SQL':^12}"
    )
    bottom = (
        f"{'query':<9}| {side} | {side} | {'p50':>5} {'p95':>5} |{'hits p50':>8} |"
        f"{'server':>7} {'db':>5} {'client':>6} |{'db':>5} {'client':>6}"
    )
    return [top, bottom]


def report(args: argparse.Namespace, info: DataInfo, outcome: Outcome, command: str) -> None:
    lines = [
        "pocdojo search benchmark",
        f"command     : {command}",
        f"machine     : {os.cpu_count()} CPUs ({cpu_model()}), {platform.platform()}",
        f"software    : Python {platform.python_version()}, PostgreSQL {info.pg_version}"
        f" (shared_buffers {info.shared_buffers})",
        f"data        : {args.pocs:,} POCs in {args.tenants} tenants x {USERS_PER_TENANT} users;"
        f" {info.distinct_titles:,} distinct titles, {info.distinct_tags} tags;"
        f" pocs table + indexes {info.pocs_size}",
        f"seed        : {seed_line(info, args.pocs)}",
        f"load        : concurrency {', '.join(map(str, args.concurrency))} (one after the"
        f" other), warmup {args.warmup:g} s, duration"
        f" {args.duration:g} s per query type and side; DB pool {pool_max()} (server and SQL)",
        f"load average: {outcome.load_before} before, {outcome.load_after} after the runs"
        " (other processes on the machine skew the figures)",
        f"validation  : {validation_line(outcome)}",
        "",
        *level_lines(outcome),
        f"* HTTP p95 above the {TARGET_P95_MS:g} ms target. 'hits p50': median matches (SQL)."
        " 'CPU ms/req': CPU",
        "  (user + system, warmup included) per request of the server process, of PostgreSQL",
        "  (all its processes, autovacuum included; embedded engine only) and of this process",
        "  (the clients).",
        "SQL side: build_search / PostgresSearch.suggest / pocs.get in tenant_tx on an app pool;",
        "HTTP adds auth (session lookup), rate limiting (Redis), JSON, and for 'get' the cache.",
    ]
    lines += error_lines(outcome)
    print("\n".join(lines), flush=True)


def level_lines(outcome: Outcome) -> list[str]:
    """A table per concurrency level, and whether every query type met the target there."""
    lines = []
    for level, rows in outcome.results.items():
        missed = [kind.name for kind, http_run, _ in rows if not meets_target(http_run)]
        verdict = f"missed by {', '.join(missed)}" if missed else "met by every query type"
        lines += [f"{level} concurrent clients: p95 target {verdict}", *header_lines()]
        lines += [result_line(*row) for row in rows]
        lines.append("")
    return lines


def meets_target(run: Run) -> bool:
    _, p95, _ = percentiles(run.latencies)
    return bool(run.latencies) and run.errors == 0 and p95 * 1e3 <= TARGET_P95_MS


def seed_line(info: DataInfo, pocs: int) -> str:
    if info.seed_seconds is None:
        return "reused existing data (seed time unknown)"
    when = "this run" if info.seeded_now else "an earlier run (data reused)"
    rate = pocs / info.seed_seconds
    return (
        f"{info.seed_seconds:.1f} s ({rate:,.0f} POCs/s) + VACUUM ANALYZE"
        f" {info.vacuum_seconds or 0:.1f} s, in {when}"
    )


def validation_line(outcome: Outcome) -> str:
    total = VALIDATION_CALLS * len(KINDS)
    same = total - len(outcome.problems)
    return f"{same}/{total} HTTP answers identical to the SQL reference"


def error_lines(outcome: Outcome) -> list[str]:
    lines = [f"validation: {p[:400]}" for p in outcome.problems[:10]]
    for kind, http_run, sql_run in (row for rows in outcome.results.values() for row in rows):
        for side, run in (("HTTP", http_run), ("SQL", sql_run)):
            for message, count in run.messages.most_common(5):
                lines.append(f"{kind.name} {side}: {count} x {message[:300]}")
    return ["", "errors:", *lines] if lines else ["", "errors: none"]


# --- Main ------------------------------------------------------------------------------------


def on_sigterm(signum: int, frame: Any) -> None:
    """``timeout`` and ``kill`` send SIGTERM: unwind, so the server and engines stop."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(sys.orig_argv)
    configure_logging("WARNING", json=False)  # migrations log to stderr, not into the report
    signal.signal(signal.SIGTERM, on_sigterm)
    data_dir = args.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with engines(args, data_dir) as urls:
        asyncio.run(migrate(urls.owner))
        info = asyncio.run(prepare(urls, args, data_dir))
        wl = Workload(bench_tenants(args.tenants), info.pocs)
        port = args.port or free_port()
        with serving(urls, port, data_dir) as server:
            postgres = None if args.database_url else postmaster_pid(data_dir)
            parties = Parties(server.pid, postgres)
            outcome = asyncio.run(measure(args, urls, port, parties, server, wl))
    report(args, info, outcome, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
