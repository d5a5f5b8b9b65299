"""Churn soak: does the server give back what rooms filling, working and emptying cost it?

Each cycle opens ``--rooms`` dojo rooms at once. In each, ``--doc-sockets`` y-websocket
clients (pycrdt, in this process) sync, make ``--edits`` edits each, set their awareness and
wait until they hold every edit and every awareness state of the room; meanwhile
``--event-sockets`` events sockets wait for their welcome, send a chat message and read it
back. Then every socket closes, and the cycle ends once every room has unloaded (the server
runs with ``DOJO_IDLE_UNLOAD`` = ``--idle-unload``; its ``/metrics`` shows
``pocdojo_rooms_active`` and ``pocdojo_ws_connections`` at 0). The same rooms (dojo
sessions) are used in every cycle: each is loaded from PostgreSQL, used and unloaded again.

After each cycle: the server's RSS, Valkey's ``used_memory`` and key count (DBSIZE), the
server's open file descriptors and the cycle's time. At the end, for RSS and Valkey, the
least-squares slope per cycle over the second half of the cycles, and the criteria: RSS slope
under 0.5 MiB per cycle, Valkey flat (over the second half its fitted line gains under 1 key
and under 5 % of its memory).

The churn runs first against this checkout, then for the same time against ``--baseline``
(a git worktree of that revision in a temporary directory, removed at the end; the same
interpreter runs it with PYTHONPATH pointing there). Each server has its own PostgreSQL and
Valkey under ``--data-dir``, Valkey emptied first; every other setting keeps its default
(the GC tuner's among them).

Run from the repository root (no JS packages needed)::

    .venv/bin/python bench/realtime/churn.py --cycles 3       # a quick check
    .venv/bin/python bench/realtime/churn.py                  # 30 minutes per server

Every process it starts is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import redis
import redis.asyncio as aioredis
from _targets import (
    HERE,
    Dojos,
    Running,
    create_dojos,
    engines,
    load_average,
    log,
    pocdojo_server,
    revision,
)
from pycrdt import (
    Awareness,
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)
from tqdm import tqdm

MIB = 1024 * 1024
RSS_SLOPE_LIMIT = 0.5  # MiB per cycle over the second half
VALKEY_FLAT_SHARE = 0.05  # of its memory, gained over the second half at the most
SOCKETS_PER_USER = 10  # WS_SOCKETS_PER_USER's default: a user's sockets in one session
REPO = HERE.parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="churn per server (30)")
    parser.add_argument("--cycles", type=int, default=0, help="this many cycles instead")
    parser.add_argument("--rooms", type=int, default=20, help="rooms per cycle (20)")
    parser.add_argument("--doc-sockets", type=int, default=10, help="per room (10)")
    parser.add_argument("--event-sockets", type=int, default=2, help="per room (2)")
    parser.add_argument("--edits", type=int, default=3, help="per document socket (3)")
    parser.add_argument("--users", type=int, default=4, help="users sharing the sockets (4)")
    parser.add_argument("--idle-unload", type=float, default=1.0, help="DOJO_IDLE_UNLOAD (1 s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per cycle step (60 s)")
    parser.add_argument(
        "--baseline", default="2941e10", help="revision to compare with (2941e10; none: skip)"
    )
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/realtime"))
    parser.add_argument("--json", type=Path, help="write every sample to this file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="trace the servers' allocations (FRAMES deep) and show what the second half kept",
    )
    return parser.parse_args()


# --- clients ---------------------------------------------------------------------------------


class DocClient:
    """A y-websocket peer with its own pycrdt document and awareness."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("code", type=Text)
        self.awareness = Awareness(self.doc)
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self, http: aiohttp.ClientSession, url: str) -> None:
        self.ws = await http.ws_connect(url, max_msg_size=0)
        self.reader = asyncio.create_task(self._read(self.ws))
        await self.ws.send_bytes(create_sync_message(self.doc))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                data: bytes = msg.data
                if data[0] == YMessageType.SYNC:
                    reply = handle_sync_message(data[1:], self.doc)
                    if reply is not None:
                        await ws.send_bytes(reply)
                    if data[1] == YSyncMessageType.SYNC_STEP2:
                        self.synced.set()
                elif data[0] == YMessageType.AWARENESS:
                    self.awareness.apply_awareness_update(read_message(data[1:]), "remote")
                self.changed.set()
        finally:
            self.changed.set()

    @property
    def socket(self) -> aiohttp.ClientWebSocketResponse:
        assert self.ws is not None
        return self.ws

    async def edit(self, marker: str) -> None:
        before = self.doc.get_state()
        self.text += marker
        await self.socket.send_bytes(create_update_message(self.doc.get_update(before)))

    async def announce(self, state: dict[str, Any]) -> None:
        self.awareness.set_local_state(state)
        update = self.awareness.encode_awareness_update([self.doc.client_id])
        await self.socket.send_bytes(create_awareness_message(update))

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            if predicate():
                return
            if self.socket.closed:
                raise ConnectionError(f"document socket closed ({self.socket.close_code})")
            await self.changed.wait()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader


async def events_part(ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
    """Wait for the welcome, send a chat message, read it back."""
    await _next_event(ws, lambda e: e.get("type") == "welcome")
    await ws.send_str(json.dumps({"type": "chat", "text": text}))
    await _next_event(ws, lambda e: e.get("type") == "chat" and e.get("text") == text)


async def _next_event(
    ws: aiohttp.ClientWebSocketResponse, wanted: Callable[[dict[str, Any]], bool]
) -> None:
    while True:
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"events socket ended: {msg.type.name} {ws.close_code}")
        if wanted(json.loads(msg.data)):
            return


# --- one cycle -------------------------------------------------------------------------------


@dataclass
class Room:
    session_id: str
    doc_url: str
    events_url: str
    tokens: list[str]


class Cycle:
    """Every room's part of one cycle; counts the sockets that did not finish theirs."""

    def __init__(self, http: aiohttp.ClientSession, args: argparse.Namespace, n: int) -> None:
        self.http = http
        self.args = args
        self.n = n
        self.missed = 0
        self.errors: list[str] = []

    def _miss(self, what: str, exc: BaseException) -> None:
        self.missed += 1
        self.errors.append(f"{what}: {type(exc).__name__} {exc}".strip())

    async def _step(self, what: str, coro: Any) -> bool:
        try:
            async with asyncio.timeout(self.args.timeout):
                await coro
        except Exception as exc:
            self._miss(what, exc)
            return False
        return True

    async def room(self, index: int, room: Room) -> None:
        args = self.args
        clients = [DocClient() for _ in range(args.doc_sockets)]
        events: list[aiohttp.ClientWebSocketResponse] = []

        async def open_doc(j: int, client: DocClient) -> bool:
            url = room.doc_url + room.tokens[j % len(room.tokens)]
            return await self._step("doc sync", _sync(client, self.http, url))

        async def talk(e: int) -> None:
            token = room.tokens[(args.doc_sockets + e) % len(room.tokens)]
            try:
                ws = await self.http.ws_connect(room.events_url + token)
            except Exception as exc:
                self._miss("events connect", exc)
                return
            events.append(ws)
            text = f"cycle {self.n} room {index} socket {e}"
            await self._step("events chat", events_part(ws, text))

        chatting = [asyncio.create_task(talk(e)) for e in range(args.event_sockets)]
        try:
            synced = await asyncio.gather(*(open_doc(j, c) for j, c in enumerate(clients)))
            live = [(j, c) for (j, c), ok in zip(enumerate(clients), synced, strict=True) if ok]
            await asyncio.gather(*(self._edit(index, j, c, live) for j, c in live))
            await asyncio.gather(*chatting)
        finally:
            for task in chatting:
                task.cancel()
            await asyncio.gather(*(c.close() for c in clients), *(ws.close() for ws in events))

    async def _edit(self, index: int, j: int, client: DocClient, live: list[Any]) -> None:
        """Edit, announce, then wait for every edit and awareness state of the room."""
        length = len(client.text)  # every live client synced before anyone edits
        markers = [f"<{self.n}.{index}.{jj}.{k}>" for jj, _ in live for k in range(self.args.edits)]
        expected = length + sum(map(len, markers))
        for k in range(self.args.edits):
            await asyncio.sleep(random.uniform(0, 0.05))
            await client.edit(f"<{self.n}.{index}.{j}.{k}>")
        await client.announce({"user": {"name": f"bench {j}"}, "cursor": {"at": j}})
        await self._step(
            "doc edits",
            client.wait_for(
                lambda: len(client.text) == expected and len(client.awareness.states) >= len(live)
            ),
        )


async def _sync(client: DocClient, http: aiohttp.ClientSession, url: str) -> None:
    await client.connect(http, url)
    await client.synced.wait()


def _metric(text: str, name: str) -> float:
    """The sum of a metric's samples (every label set) in the text exposition format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


async def wait_unloaded(http: aiohttp.ClientSession, port: int, within: float) -> None:
    """Until no room is loaded and no socket open on the server."""
    async with asyncio.timeout(within):
        while True:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                text = await resp.text()
            if not _metric(text, "pocdojo_rooms_active") and not _metric(
                text, "pocdojo_ws_connections"
            ):
                return
            await asyncio.sleep(0.1)


# --- where the server's memory went (--tracemalloc) -------------------------------------------

# Put on the server's PYTHONPATH as sitecustomize: traces allocations from the start and dumps
# a snapshot next to itself on SIGUSR2 (which pocdojo does not use).
_TRACE_HOOK = """\
import os, signal, tracemalloc
tracemalloc.start({frames})
_count = [0]
def _dump(signum, frame):
    _count[0] += 1
    path = os.path.join({folder!r}, "snapshot.%d" % _count[0])
    tracemalloc.take_snapshot().dump(path + ".part")
    os.replace(path + ".part", path)
signal.signal(signal.SIGUSR2, _dump)
"""


class Tracer:
    """Snapshots of the server's allocations: one mid-way, one at the end."""

    def __init__(self, folder: Path, frames: int) -> None:
        self.folder = folder.resolve()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        hook = _TRACE_HOOK.format(frames=frames, folder=str(self.folder))
        (self.folder / "sitecustomize.py").write_text(hook)
        self.snapshots: list[Path] = []

    async def snapshot(self, pid: int, within: float = 600.0) -> None:
        path = self.folder / f"snapshot.{len(self.snapshots) + 1}"
        os.kill(pid, signal.SIGUSR2)
        async with asyncio.timeout(within):  # taking it may stall the server for a while
            while True:
                if path.exists():
                    break
                await asyncio.sleep(0.2)
        self.snapshots.append(path)

    def report(self, label: str, top: int = 15) -> str:
        import tracemalloc

        if len(self.snapshots) < 2:
            return ""
        noise = [tracemalloc.Filter(False, tracemalloc.__file__),
                 tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
                 tracemalloc.Filter(False, "<unknown>")]  # fmt: skip
        old, new = (tracemalloc.Snapshot.load(str(p)).filter_traces(noise) for p in self.snapshots)
        lines = [f"{label}: traced memory mid-way {_traced(old)}, at the end {_traced(new)};"
                 f" what grew most between the two:"]  # fmt: skip
        for stat in new.compare_to(old, "traceback")[:top]:
            frames = stat.traceback.format(most_recent_first=True)[::2][:4]
            lines.append(
                f"  {stat.size_diff / 1024:+9.0f} KiB {stat.count_diff:+7d} blocks  "
                + " <- ".join(f.strip() for f in frames)
            )
        return "\n".join(lines)


def _traced(snapshot: Any) -> str:
    return f"{sum(t.size for t in snapshot.traces) / MIB:.1f} MiB"


# --- samples and the run of one server -------------------------------------------------------


@dataclass
class Sample:
    cycle: int
    at: float  # seconds since the churn started
    seconds: float  # this cycle's
    rss: int
    valkey_bytes: int
    valkey_keys: int
    fds: int
    missed: int
    load: float  # 1-minute load average


@dataclass
class Result:
    label: str
    revision: str
    idle: Sample | None = None  # before the first cycle, rooms created
    samples: list[Sample] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""
    setup_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    allocations: str = ""


async def _sample(
    server: Running, valkey: aioredis.Redis, cycle: int, at: float, seconds: float, missed: int
) -> Sample:
    info = await valkey.info("memory")
    keys = await valkey.dbsize()
    fds = -1
    with contextlib.suppress(psutil.Error):
        fds = psutil.Process(server.proc.pid).num_fds()
    return Sample(
        cycle, at, seconds, server.measured.sample().rss, int(info["used_memory"]), int(keys),
        fds, missed, os.getloadavg()[0],
    )  # fmt: skip


def _line(label: str, s: Sample) -> str:
    return (
        f"{label} cycle {s.cycle:4d}  {s.seconds:5.1f} s  RSS {s.rss / MIB:7.1f} MiB  "
        f"Valkey {s.valkey_bytes / MIB:6.2f} MiB {s.valkey_keys:5d} keys  fds {s.fds:4d}  "
        f"missed {s.missed}  load {s.load:.2f}"
    )


async def churn(
    server: Running, redis_url: str, result: Result, args: argparse.Namespace, tracer: Tracer | None
) -> None:
    per_socket_users = math.ceil((args.doc_sockets + args.event_sockets) / SOCKETS_PER_USER)
    dojos: Dojos = await create_dojos(server.port, args.rooms, max(args.users, per_socket_users))
    result.setup_seconds = dojos.setup_seconds
    base = f"ws://127.0.0.1:{server.port}"
    rooms = [
        Room(sid, f"{base}{path}?token=", f"{base}/v1/dojos/sessions/{sid}/events?token=", tokens)
        for sid, path, tokens in zip(dojos.session_ids, dojos.doc_paths, dojos.tokens, strict=True)
    ]
    valkey = aioredis.Redis.from_url(redis_url)
    connector = aiohttp.TCPConnector(limit=0)  # every socket of a cycle at once
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    by_time = not args.cycles
    total = args.minutes * 60 if by_time else args.cycles
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            result.idle = await _sample(server, valkey, 0, 0.0, 0.0, 0)
            tqdm.write(_line(result.label, result.idle) + "  (before the first cycle)")
            bar = tqdm(total=round(total), desc=result.label, unit="s" if by_time else "cycle",
                       file=sys.stderr, dynamic_ncols=True)  # fmt: skip
            started = time.monotonic()
            n = 0
            with bar:
                while (time.monotonic() - started < total) if by_time else n < total:
                    n += 1
                    began = time.monotonic()
                    cycle = Cycle(http, args, n)
                    await asyncio.gather(*(cycle.room(i, r) for i, r in enumerate(rooms)))
                    await wait_unloaded(http, server.port, args.idle_unload + args.timeout)
                    server.check()
                    now = time.monotonic()
                    sample = await _sample(
                        server, valkey, n, now - started, now - began, cycle.missed
                    )
                    result.samples.append(sample)
                    result.errors += cycle.errors[:5]
                    bar.update(round(now - started) - bar.n if by_time else 1)
                    bar.set_postfix_str(f"cycle {n}, RSS {sample.rss / MIB:.1f} MiB")
                    tqdm.write(_line(result.label, sample))
                    halfway = sample.at >= total / 2 if by_time else n >= total // 2
                    if tracer and not tracer.snapshots and halfway:
                        await tracer.snapshot(server.proc.pid)
            if tracer:
                await tracer.snapshot(server.proc.pid)
    finally:
        await valkey.aclose()


def run_server(label: str, rev: str, args: argparse.Namespace, **env: str) -> Result:
    data_dir = args.data_dir / "churn" / label
    tracer = None
    if args.tracemalloc:
        tracer = Tracer(data_dir / "tracemalloc", args.tracemalloc)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(tracer.folder), env.get("PYTHONPATH")])
        )
    with engines(data_dir / "engines") as urls:
        flush = redis.Redis.from_url(urls.redis)
        flush.flushall()
        flush.close()
        with pocdojo_server(
            urls, data_dir, DOJO_IDLE_UNLOAD=str(args.idle_unload), **env
        ) as server:
            result = Result(label, rev, load_before=load_average())
            asyncio.run(churn(server, urls.redis, result, args, tracer))
            result.load_after = load_average()
            if tracer:
                result.allocations = tracer.report(f"{label} {rev}")
            return result


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[tuple[Path, str]]:
    """A git worktree of ``rev`` in a temporary directory, and its short hash."""
    short = _git("rev-parse", "--short", f"{rev}^{{commit}}")
    tmp = Path(tempfile.mkdtemp(prefix="pocdojo-churn-"))
    tree = tmp / "tree"
    _git("worktree", "add", "--detach", "--quiet", str(tree), short)
    try:
        yield tree, short
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(subprocess.SubprocessError):
            _git("worktree", "prune")


def _git(*command: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), *command], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def _imports_from(tree: Path) -> None:
    """Check that PYTHONPATH makes this interpreter run the worktree's pocdojo (``-P``: as in
    the ``pocdojo`` script, the current directory is not searched first)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    found = subprocess.run(
        [sys.executable, "-P", "-c", "import pocdojo; print(pocdojo.__file__)"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"PYTHONPATH={tree} still imports pocdojo from {found}")


# --- the report ------------------------------------------------------------------------------


def slope(samples: list[Sample], value: Callable[[Sample], float]) -> float:
    """Least-squares slope of ``value`` per cycle over the second half of the samples."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return math.nan
    return statistics.linear_regression([s.cycle for s in half], [value(s) for s in half]).slope


@dataclass
class Summary:
    cycles: int
    minutes: float
    cycle_seconds: float  # median
    rss_idle: float  # MiB
    rss_start: float  # after the first cycle
    rss_end: float
    rss_max: float
    rss_slope: float  # MiB per cycle, second half
    valkey_start: float  # MiB
    valkey_end: float
    valkey_slope: float  # KiB per cycle, second half
    keys_start: int
    keys_end: int
    keys_slope: float
    fds_start: int
    fds_end: int
    missed: int
    rss_pass: bool
    valkey_pass: bool


def summarize(result: Result) -> Summary:
    samples = result.samples
    first, last = samples[0], samples[-1]
    half = len(samples) - len(samples) // 2  # cycles in the second half
    valkey_slope = slope(samples, lambda s: s.valkey_bytes / 1024)
    keys_slope = slope(samples, lambda s: s.valkey_keys)
    rss_slope = slope(samples, lambda s: s.rss / MIB)
    valkey_median = statistics.median(s.valkey_bytes / 1024 for s in samples[len(samples) // 2 :])
    return Summary(
        cycles=len(samples),
        minutes=last.at / 60,
        cycle_seconds=statistics.median(s.seconds for s in samples),
        rss_idle=result.idle.rss / MIB if result.idle else math.nan,
        rss_start=first.rss / MIB,
        rss_end=last.rss / MIB,
        rss_max=max(s.rss for s in samples) / MIB,
        rss_slope=rss_slope,
        valkey_start=first.valkey_bytes / MIB,
        valkey_end=last.valkey_bytes / MIB,
        valkey_slope=valkey_slope,
        keys_start=first.valkey_keys,
        keys_end=last.valkey_keys,
        keys_slope=keys_slope,
        fds_start=first.fds,
        fds_end=last.fds,
        missed=sum(s.missed for s in samples),
        rss_pass=rss_slope < RSS_SLOPE_LIMIT,
        valkey_pass=keys_slope * half < 1
        and valkey_slope * half < VALKEY_FLAT_SHARE * valkey_median,
    )


ROWS: list[tuple[str, str, str]] = [
    # (label, Summary field, format)
    ("cycles", "cycles", "{:d}"),
    ("minutes of churn", "minutes", "{:.1f}"),
    ("cycle time, median s", "cycle_seconds", "{:.2f}"),
    ("RSS before the first cycle, MiB", "rss_idle", "{:.1f}"),
    ("RSS after the first cycle, MiB", "rss_start", "{:.1f}"),
    ("RSS at the end, MiB", "rss_end", "{:.1f}"),
    ("RSS highest, MiB", "rss_max", "{:.1f}"),
    ("RSS slope, 2nd half, MiB/cycle", "rss_slope", "{:.3f}"),
    ("Valkey memory after the first cycle, MiB", "valkey_start", "{:.2f}"),
    ("Valkey memory at the end, MiB", "valkey_end", "{:.2f}"),
    ("Valkey memory slope, 2nd half, KiB/cycle", "valkey_slope", "{:.2f}"),
    ("Valkey keys after the first cycle", "keys_start", "{:d}"),
    ("Valkey keys at the end", "keys_end", "{:d}"),
    ("Valkey keys slope, 2nd half, keys/cycle", "keys_slope", "{:.3f}"),
    ("server fds after the first cycle / at the end", "fds", ""),
    ("sockets that did not finish their part", "missed", "{:d}"),
]


def report(results: list[Result], args: argparse.Namespace) -> bool:
    summaries = [summarize(r) for r in results]
    heads = [f"{r.label} {r.revision}" for r in results]
    if len(results) == 2:
        heads.append(f"{results[0].label} / {results[1].label}")
    width = max(len(row[0]) for row in ROWS) + 2
    print()
    print(
        f"Churn: {args.rooms} rooms x ({args.doc_sockets} document + {args.event_sockets} events"
        f" sockets), {args.edits} edits per document socket, DOJO_IDLE_UNLOAD={args.idle_unload}"
    )
    print("".ljust(width) + "".join(h.rjust(22) for h in heads))
    for name, attr, fmt in ROWS:
        if attr == "fds":
            cells = [f"{s.fds_start} / {s.fds_end}" for s in summaries]
        else:
            values = [getattr(s, attr) for s in summaries]
            cells = [fmt.format(v) for v in values]
            if len(values) == 2 and isinstance(values[0], float):
                cells.append(_ratio(values[0], values[1]))
        print(name.ljust(width) + "".join(c.rjust(22) for c in cells))
    print("load average (1, 5, 15 min) before / after each server:")
    for r in results:
        print(f"  {r.label}: {r.load_before} / {r.load_after}")
    ok = True
    for r, s in zip(results, summaries, strict=True):
        verdict = [
            f"RSS slope {s.rss_slope:.3f} < {RSS_SLOPE_LIMIT} MiB/cycle: "
            + ("PASS" if s.rss_pass else "FAIL"),
            "Valkey flat: " + ("PASS" if s.valkey_pass else "FAIL"),
        ]
        print(f"criteria, {r.label} {r.revision}: " + "; ".join(verdict))
        if r.errors:
            print(f"  first errors ({r.label}): " + " | ".join(r.errors[:5]))
    for r in results:
        if r.allocations:
            print(r.allocations)
        ok = ok and s.rss_pass and s.valkey_pass
    if args.json:
        args.json.write_text(json.dumps([
            {**asdict(r), "summary": asdict(s)} for r, s in zip(results, summaries, strict=True)
        ], indent=1))  # fmt: skip
    return ok


def _ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}x"


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    random.seed(args.seed)
    print(f"load average before: {load_average()}")
    results = [run_server("current", revision(), args)]
    if args.baseline.lower() != "none":
        with checkout(args.baseline) as (tree, short):
            _imports_from(tree)
            log(f"baseline {short}: pocdojo from a worktree of it (PYTHONPATH)")
            results.append(run_server("baseline", short, args, PYTHONPATH=str(tree)))
    print(f"load average after: {load_average()}")
    return 0 if report(results, args) else 1


if __name__ == "__main__":
    raise SystemExit(main())
