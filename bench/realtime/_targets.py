"""The servers the realtime benchmarks run against, and how their processes are measured.

* ``pocdojo``: ``pocdojo serve`` (the console script next to ``sys.executable``) as a
  subprocess on embedded PostgreSQL and Valkey that the bench starts itself under its data
  directory (so they can be measured apart from the server). ``serve`` applies the
  migrations. Limits that would stop a load test (updates per second, requests per minute,
  signups per IP) are raised through the environment; argon2 is made cheap (setup only).
* ``reference``: the y-websocket reference server, ``@y/websocket-server`` 0.1.1, in memory.
* ``hocuspocus``: ``@hocuspocus/server`` 3.4 (``hocuspocus_server.mjs``), in memory.

Every server listens on 127.0.0.1 only, runs in its own session and is stopped (SIGINT, then
SIGKILL after a grace period) when its context exits, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
POCDOJO = Path(sys.executable).with_name("pocdojo")
PASSWORD = "Bench#Passw0rd"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 180.0
STOP_DUMP_AFTER = 60.0


def log(message: str) -> None:
    """Progress goes to stderr; reports go to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def require_node_modules() -> None:
    if not (NODE_MODULES / "yjs").is_dir():
        raise SystemExit(
            f"JS packages missing: run `npm ci --prefix {HERE.relative_to(Path.cwd())}` "
            "(or from bench/realtime: npm ci)"
        )


def js_versions() -> dict[str, str]:
    """Installed versions of the JS packages the benches use."""
    import json

    found = {}
    for name in ("yjs", "y-websocket", "y-protocols", "ws", "@y/websocket-server",
                 "@hocuspocus/server"):  # fmt: skip
        with contextlib.suppress(OSError, ValueError):
            found[name] = json.loads((NODE_MODULES / name / "package.json").read_text())["version"]
    return found


# --- process measurement ---------------------------------------------------------------------


@dataclass
class ProcSample:
    cpu: float  # user + system seconds, summed over the processes
    rss: int  # bytes, summed


class Measured:
    """A set of processes measured together (a server; or PostgreSQL + Valkey)."""

    def __init__(self, roots: Sequence[int], *, children: bool = False) -> None:
        self.roots = [psutil.Process(pid) for pid in roots]
        self.children = children

    def processes(self) -> list[psutil.Process]:
        found = list(self.roots)
        if self.children:
            for root in self.roots:
                with contextlib.suppress(psutil.Error):
                    found += root.children(recursive=True)
        return found

    def sample(self) -> ProcSample:
        cpu, rss = 0.0, 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error), proc.oneshot():
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
        return ProcSample(cpu, rss)


# --- running servers -------------------------------------------------------------------------


@dataclass
class Running:
    """A server process the bench started."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    measured: Measured
    engines: Measured | None = None
    urls: EngineUrls | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}\n{tail}")


def _stop(proc: subprocess.Popen[bytes], name: str, log_path: Path | None = None) -> None:
    """SIGINT; a py-spy dump into the log if a Python server is still up after a minute;
    SIGKILL after ``STOP_TIMEOUT``."""
    started = time.monotonic()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(STOP_DUMP_AFTER)
        except subprocess.TimeoutExpired:
            if log_path is not None:
                _dump_stacks(proc.pid, log_path, name)
        try:
            proc.wait(max(0.0, STOP_TIMEOUT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            log(f"{name} ignored SIGINT for {STOP_TIMEOUT:.0f} s: killing it")
            proc.kill()
            proc.wait()
    log(f"{name} stopped (exit {proc.returncode}) {time.monotonic() - started:.1f} s after SIGINT")


def _dump_stacks(pid: int, log_path: Path, name: str) -> None:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return
    out = log_path.with_suffix(".stuck.txt")
    with out.open("wb") as fh, contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([str(spy), "dump", "--pid", str(pid)], stdout=fh, stderr=fh, timeout=60)
    log(f"{name} still running {STOP_DUMP_AFTER:.0f} s after SIGINT: stacks in {out}")


@contextlib.contextmanager
def _spawn(
    name: str, command: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    log(f"{name}: pid {proc.pid} (log: {log_path})")
    try:
        yield proc
    finally:
        _stop(proc, name, log_path if command[0] != "node" else None)


def _wait_port(proc: subprocess.Popen[bytes], port: int, name: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited with {proc.returncode} before listening\n{tail}")
        if port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on {port} within {START_TIMEOUT:.0f} s")


@contextlib.contextmanager
def reference_server(log_dir: Path) -> Iterator[Running]:
    """``@y/websocket-server`` 0.1.1 on loopback; room = URL path without the slash."""
    require_node_modules()
    port = free_port()
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port))
    script = NODE_MODULES / "@y" / "websocket-server" / "src" / "server.js"
    log_path = log_dir / "reference.log"
    with _spawn("reference server", ["node", str(script)], env, log_path, HERE) as proc:
        _wait_port(proc, port, "reference server", log_path)
        yield Running("reference", proc, port, log_path, Measured([proc.pid]))


@contextlib.contextmanager
def hocuspocus_server(log_dir: Path) -> Iterator[Running]:
    """``@hocuspocus/server`` 3.4 on loopback (``hocuspocus_server.mjs``)."""
    require_node_modules()
    port = free_port()
    env = dict(os.environ, PORT=str(port))
    log_path = log_dir / "hocuspocus.log"
    command = ["node", str(HERE / "hocuspocus_server.mjs")]
    with _spawn("hocuspocus", command, env, log_path, HERE) as proc:
        _wait_port(proc, port, "hocuspocus", log_path)
        yield Running("hocuspocus", proc, port, log_path, Measured([proc.pid]))


@dataclass(frozen=True)
class EngineUrls:
    owner: str
    app: str | None
    redis: str
    measured: Measured

    def counters(self) -> dict[str, int]:
        """Cumulative work counters: Redis commands and clients, rows logged by pocdojo."""
        import asyncpg
        import redis

        found: dict[str, int] = {}
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(self.redis, socket_timeout=5)
            info: dict[str, Any] = client.info()  # type: ignore[assignment]
            found["redis_commands"] = int(info["total_commands_processed"])
            found["redis_clients"] = int(info["connected_clients"])
            client.close()

        async def inserted() -> int:
            conn = await asyncpg.connect(self.owner, timeout=10)
            try:
                await conn.execute("SELECT pg_stat_force_next_flush()")
                value = await conn.fetchval(
                    "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'dojo_updates'"
                )
                return int(value or 0)
            finally:
                await conn.close()

        with contextlib.suppress(Exception):
            found["pg_updates_logged"] = asyncio.run(inserted())
        return found


@contextlib.contextmanager
def engines(data_dir: Path) -> Iterator[EngineUrls]:
    """Embedded PostgreSQL and Valkey under ``data_dir`` (stopped on exit)."""
    from pocdojo.core.embedded import embedded_engines

    with embedded_engines(data_dir, postgres=True, valkey=True) as started:
        for line in started.started:
            log(f"started {line}")
        assert started.database_url
        assert started.redis_url
        yield EngineUrls(
            started.database_url,
            started.database_app_url,
            started.redis_url,
            _engine_processes(data_dir.expanduser().resolve(), started.redis_url),
        )


def _engine_processes(data_dir: Path, redis_url: str) -> Measured:
    return Measured(postgres_pids(data_dir) + valkey_pids(redis_url), children=True)


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster of the embedded PostgreSQL under ``data_dir`` (its backends are its
    children)."""
    pid_file = data_dir.expanduser().resolve() / "postgres" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError):
        return [int(pid_file.read_text().split("\n", 1)[0])]
    return []


def valkey_pids(redis_url: str) -> list[int]:
    """The ``valkey-server`` listening at ``redis_url``'s address (by its process title)."""
    address = redis_url.split("//", 1)[1].split("/", 1)[0]
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "valkey-server" in cmdline and address in cmdline:
            found.append(proc.pid)
    return found


def pocdojo_env(urls: EngineUrls, data_dir: Path, **extra: str) -> dict[str, str]:
    from pocdojo.core.settings import Settings

    fields = set(Settings.model_fields)
    env = {k: v for k, v in os.environ.items() if k.lower() not in fields}
    env.update(
        PYTHONUNBUFFERED="1",
        DATABASE_URL=urls.owner,
        REDIS_URL=urls.redis,
        JWT_SECRET=secrets.token_urlsafe(36),
        DATA_DIR=str(data_dir / "server"),
        LOG_LEVEL="WARNING",
        ACCESS_TOKEN_TTL="86400",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_KIB="1024",
        REQUESTS_PER_MINUTE_USER="100000000",
        SIGNUP_LIMIT_IP="1000000",
        LOGIN_FAIL_LIMIT_IP="1000000",
        LOGIN_FAIL_LIMIT_ACCOUNT="1000000",
    )
    if urls.app:
        env["DATABASE_APP_URL"] = urls.app
    env.update(extra)
    return env


@contextlib.contextmanager
def pocdojo_server(
    urls: EngineUrls, data_dir: Path, *, label: str = "pocdojo serve", **extra: str
) -> Iterator[Running]:
    """``pocdojo serve`` on loopback, on the given engines (``extra``: more environment, e.g.
    another ``REDIS_URL``; several nodes of one cluster need one ``JWT_SECRET``). ``label``
    names it in the progress lines."""
    port = free_port()
    command = [str(POCDOJO), "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = pocdojo_env(urls, data_dir, **extra)
    log_path = data_dir / "server.log"
    with _spawn(label, command, env, log_path) as proc:
        _wait_port(proc, port, label, log_path)
        yield Running("pocdojo", proc, port, log_path, Measured([proc.pid]), urls.measured, urls)


# --- pocdojo: tenant, users, POC, dojo sessions over HTTP ------------------------------------


@dataclass
class Dojos:
    """R dojo sessions and, for each, the participant tokens of every bench user."""

    session_ids: list[str]
    doc_paths: list[str]  # /v1/dojos/sessions/{id}/doc
    tokens: list[list[str]]  # tokens[room][user]
    setup_seconds: float


async def _api(
    http: aiohttp.ClientSession, method: str, path: str, body: Any = None, token: str = ""
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for attempt in range(5):
        async with http.request(method, path, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status < 300:
                return data
            if resp.status not in (429, 503) or attempt == 4:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
        await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def create_dojos(
    port: int, rooms: int, users: int, *, initial_code: str = "", concurrency: int = 16
) -> Dojos:
    """One tenant, ``users`` users (the admin hosts every dojo), one POC, ``rooms`` sessions
    every user has joined."""
    started = time.monotonic()
    base = f"http://127.0.0.1:{port}"
    tag = uuid.uuid4().hex[:8]
    domain = f"rtbench-{tag}.example"
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, timeout=timeout, connector=connector) as http:
        await _ready(http)
        admin = f"host{tag}"
        await _api(http, "POST", "/v1/tenants", {
            "name": "Realtime Bench", "domain": domain, "contactEmail": f"ops@{domain}",
            "plan": "enterprise",
            "admin": {"username": admin, "email": f"{admin}@{domain}", "fullName": "Bench Host",
                      "password": PASSWORD},
        })  # fmt: skip
        body = {"username": admin, "password": PASSWORD, "tenantId": domain}
        login = await _api(http, "POST", "/v1/auth/login", body)
        host_token = login["token"]
        guest_tokens = []
        for i in range(1, users):
            name = f"u{i}{tag}"
            await _api(http, "POST", "/v1/users/register", {
                "username": name, "password": PASSWORD, "email": f"{name}@{domain}",
                "fullName": f"Bench User {i}", "tenantId": login["tenantId"], "role": "user",
            }, host_token)  # fmt: skip
            body = {"username": name, "password": PASSWORD, "tenantId": domain}
            guest = await _api(http, "POST", "/v1/auth/login", body)
            guest_tokens.append(guest["token"])
        poc = await _api(http, "POST", "/v1/pocs", {
            "title": "Realtime bench POC", "description": "dojo load", "language": "Python",
            "tags": ["bench"], "userId": login["userId"], "tenantId": login["tenantId"],
        }, host_token)  # fmt: skip

        async def one(index: int) -> tuple[str, str, list[str]]:
            async with gate:
                dojo = await _api(http, "POST", "/v1/dojos/sessions", {
                    "title": f"Bench kata {index}", "pocId": poc["pocId"],
                    "initialCode": initial_code, "maxParticipants": max(2, min(users, 50)),
                }, host_token)  # fmt: skip
                tokens = [dojo["participantToken"]]
                for guest in guest_tokens:
                    joined = await _api(http, "POST",
                                        f"/v1/dojos/sessions/{dojo['sessionId']}/join",
                                        {"joinCode": dojo["joinCode"]}, guest)  # fmt: skip
                    tokens.append(joined["participantToken"])
            path = "/" + dojo["docUrl"].split("://", 1)[1].split("/", 1)[1]
            return dojo["sessionId"], path, tokens

        made = await asyncio.gather(*(one(i) for i in range(rooms)))
    return Dojos(
        [m[0] for m in made], [m[1] for m in made], [m[2] for m in made],
        time.monotonic() - started,
    )  # fmt: skip


async def _ready(http: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get("/readyz") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.2)
    raise RuntimeError("pocdojo was not ready in time")


def revision() -> str:
    """The project's commit (and whether pocdojo/ has uncommitted changes)."""
    repo = HERE.parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "pocdojo"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" (pocdojo/ modified)" if dirty else "")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# --- profiling -------------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(
    pid: int, out: Path, *, enabled: bool, rate: int = 100, native: bool = False
) -> Iterator[Path | None]:
    """Sample ``pid`` with py-spy while inside: collapsed stacks of the threads that were
    running (idle threads and the event loop's wait in ``select`` are left out)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not enabled:
        yield None
        return
    if not spy.exists():
        log("py-spy is not installed in this environment (pip install py-spy): not profiling")
        yield None
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [str(spy), "record", "--pid", str(pid), "--format", "raw", "--output", str(out),
               "--rate", str(rate)]  # fmt: skip
    # C frames too (the garbage collector, zlib, pycrdt); py-spy must pause the process for
    # those, so a native profile slows the server a little.
    command.append("--native" if native else "--nonblocking")
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    log(f"py-spy recording pid {pid} into {out}")
    try:
        yield out
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarize_profile(path: Path, top: int = 25) -> str:
    """Where the busy samples were: by innermost frame (self), and by frame anywhere on the
    stack (inclusive); shares of all samples taken while the process was running."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [f for f in stack.split(";") if f]
            if not frames:
                continue
            frames = [f.split(" (", 1)[0] + _where(f) for f in frames]
            own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    if not total:
        return f"(no samples in {path})"
    lines = [f"py-spy: {total} busy samples ({path})", "  self:"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(lines)


def _where(frame: str) -> str:
    if " (" not in frame:
        return ""
    place = frame.split(" (", 1)[1].rstrip(")")
    file, _, _line = place.rpartition(":")
    parts = Path(file).parts
    for anchor in ("pocdojo", "site-packages", "lib"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            kept = parts[index:] if anchor == "pocdojo" else parts[index + 1 :]
            return " (" + "/".join(kept) + ")"
    return " (" + Path(file).name + ")"
