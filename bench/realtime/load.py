"""Realtime load benchmark: many dojo rooms editing at once, pocdojo next to the JS servers.

What it measures: ``--rooms`` R rooms of ``--clients`` C clients each; every client sends
``--rate`` small edits per second (so R x C x rate updates/s are offered; the target point is
1000 x 10 clients and 2,000 updates/s) for ``--duration`` seconds after ``--warmup``. The same
load runs, in one invocation, against each of ``--targets``:

* ``pocdojo`` -- ``pocdojo serve`` on embedded PostgreSQL and Valkey, one tenant, ``--users``
  users who all joined R dojo sessions (created over HTTP); clients share their tokens;
* ``reference`` -- the y-websocket reference server ``@y/websocket-server`` 0.1.1;
* ``hocuspocus`` -- ``@hocuspocus/server`` 3.4, spoken to with its own framing.

Clients are raw y-websocket clients (``_wsclient.py``) spread over ``--client-procs``
processes. Each edit is a real Yjs update inserting a marker that carries the sender and the
send time; every other client of the room decodes the markers it receives. Reported per
target:

* connections held, failed (at connect) and dropped (closed or lost during the run), and
  how long connecting took;
* offered updates/s (edits sent in the window), fan-out deliveries/s (edits received by the
  other clients of the room, counted by send time within the window and received before the
  end of ``--drain``), and delivery % (of R x (C-1) receipts per edit);
* fan-out latency p50/p95/p99 (send -> receipt at every other client of the room);
* server CPU seconds in the window (and % of one core), server RSS idle / with every socket
  connected / peak, and RSS per connection ((connected - idle) / connections); for pocdojo,
  PostgreSQL + Valkey CPU and RSS too (the JS servers keep everything in memory);
* the load generator's own CPU, so a saturated generator is visible.

Then the ratios pocdojo / reference (and pocdojo / hocuspocus) for throughput, latencies,
CPU and RSS per connection.

Run it from the repository root (JS packages first: ``npm ci --prefix bench/realtime``)::

    .venv/bin/python bench/realtime/load.py                       # 100 x 10, 1 edit/s
    .venv/bin/python bench/realtime/load.py --rooms 20 --clients 10 --rate 2 --duration 15
    .venv/bin/python bench/realtime/load.py --rooms 1000 --clients 10 --rate 0.2 \\
        --client-procs 3 --duration 30                             # 10,000 sockets
    .venv/bin/python bench/realtime/load.py --rooms 200 --clients 10 --rate 1 \\
        --client-procs 3                                           # 2,000 updates/s

Everything runs on 127.0.0.1; every server is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import signal
import sys
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
from _targets import (
    ProcSample,
    Running,
    create_dojos,
    engines,
    hocuspocus_server,
    js_versions,
    load_average,
    log,
    pocdojo_server,
    profiled,
    reference_server,
    revision,
    summarize_profile,
)
from _wsclient import RoomSpec, WorkerSpec, raise_nofile, worker_main

TARGETS = ("pocdojo", "reference", "hocuspocus")
MiB = 1024 * 1024


def add_load_arguments(
    parser: argparse.ArgumentParser, rooms: int, clients: int, rate: float, duration: float
) -> None:
    """The load's shape (``--rooms``, ``--clients``, ``--rate``) and timing, with defaults, and
    how its clients run and connect."""
    parser.add_argument("--rooms", type=int, default=rooms, help="rooms (R)")
    parser.add_argument("--clients", type=int, default=clients, help="clients per room (C)")
    parser.add_argument("--rate", type=float, default=rate, help="edits per second per client")
    parser.add_argument("--duration", type=float, default=duration, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument(
        "--drain", type=float, default=3.0, help="seconds to wait for late receipts"
    )
    parser.add_argument(
        "--client-procs", type=int, default=0,
        help="load generator processes (0: one per 2,500 sockets, at least 1, at most 4)",
    )  # fmt: skip
    parser.add_argument(
        "--deflate", action=argparse.BooleanOptionalAction, default=True,
        help="offer permessage-deflate as browsers do, and compress sends once agreed "
        "(pocdojo's aiohttp agrees; the ws-based JS servers decline by default)",
    )  # fmt: skip
    parser.add_argument("--users", type=int, default=5, help="pocdojo users (token holders)")
    parser.add_argument(
        "--connect-concurrency", type=int, default=50,
        help="handshakes in flight per client process",
    )  # fmt: skip
    parser.add_argument("--connect-timeout", type=float, default=120.0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_load_arguments(parser, rooms=100, clients=10, rate=1.0, duration=30.0)
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".bench/realtime"),
        help="embedded engines, server logs (a fresh tenant each run)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", nargs="?", const="python", choices=("python", "native"),
        help="sample pocdojo serve with py-spy during the window and print where time went "
        "(--profile native: C frames too)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.client_procs <= 0:
        args.client_procs = max(1, min(4, -(-args.rooms * args.clients // 2500)))
    args.client_procs = min(args.client_procs, args.rooms)
    return args


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    connected: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    deflate_agreed: int = 0
    closes: dict[str, int] = field(default_factory=dict)
    connect_seconds: float = 0.0
    connect_cpu: float = 0.0
    sent_window: int = 0
    expected_window: int = 0
    delivered_window: int = 0
    duplicates: int = 0
    gaps: int = 0
    echoes: int = 0
    multi_marker_messages: int = 0
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    send_lag_p99_ms: float = float("nan")
    cpu_s: float = 0.0
    rss_idle: int = 0
    rss_connected: int = 0
    rss_peak: int = 0
    rss_end: int = 0
    engine_cpu_s: float | None = None
    engine_rss_peak: int | None = None
    client_cpu_s: float = 0.0
    duration: float = 0.0
    setup_seconds: float | None = None
    load_before: str = ""
    load_after: str = ""
    profile: str = ""
    engine_counters: dict[str, int] = field(default_factory=dict)

    @property
    def offered_per_s(self) -> float:
        return self.sent_window / self.duration

    @property
    def delivered_per_s(self) -> float:
        return self.delivered_window / self.duration

    @property
    def delivery_pct(self) -> float:
        return 100.0 * self.delivered_window / self.expected_window if self.expected_window else 0

    @property
    def rss_per_conn(self) -> float:
        return (self.rss_connected - self.rss_idle) / self.connected if self.connected else 0.0


def quantile(sorted_values: Sequence[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def split_rooms(rooms: list[RoomSpec], procs: int) -> list[tuple[RoomSpec, ...]]:
    return [tuple(rooms[w::procs]) for w in range(procs)]


def _recv_all(conns: list[Connection], timeout: float, what: str) -> list[Any]:
    """One message from each worker pipe, within ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    got: list[Any] = [None] * len(conns)
    pending = set(range(len(conns)))
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"client processes did not report {what} in {timeout:.0f} s")
        for i in list(pending):
            if conns[i].poll(min(0.2, left)):
                got[i] = conns[i].recv()
                pending.discard(i)
    return got


def _sleep_until(deadline: float, every: float, sample: Any = None) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(every, left))
        if sample is not None:
            sample()


def run_load(
    server: Running, rooms: list[RoomSpec], framing: str, args: argparse.Namespace
) -> Result:
    """Connect every client to ``server``, run the edits, gather what everyone measured."""
    return run_clients(server, rooms, framing, args)[0]


def run_clients(
    server: Running,
    rooms: list[RoomSpec],
    framing: str,
    args: argparse.Namespace,
    ports: Sequence[int] = (),
) -> tuple[Result, list[dict[str, Any]]]:
    """``run_load``, also returning each client process's own report. With ``ports`` (several
    nodes of one server), client c of each room connects to ``ports[c % len(ports)]``;
    ``server`` then stands for them all (its ``measured`` and ``check`` should cover every
    node)."""
    result = Result(server.name, duration=args.duration, load_before=load_average())
    idle = server.measured.sample()
    result.rss_idle = idle.rss
    epoch_ns = time.monotonic_ns()
    ctx = mp.get_context("spawn")
    workers: list[Any] = []
    conns: list[Connection] = []
    for w, part in enumerate(split_rooms(rooms, args.client_procs)):
        parent_end, child_end = ctx.Pipe()
        spec = WorkerSpec(
            worker=w, host="127.0.0.1", port=server.port, framing=framing, rooms=part,
            clients_per_room=args.clients, rate=args.rate, warmup=args.warmup,
            duration=args.duration, drain=args.drain, epoch_ns=epoch_ns,
            connect_concurrency=args.connect_concurrency,
            connect_timeout=args.connect_timeout, seed=args.seed * 1000 + w,
            deflate=args.deflate, ports=tuple(ports),
        )  # fmt: skip
        proc = ctx.Process(target=worker_main, args=(child_end, spec), daemon=True)
        proc.start()
        child_end.close()
        workers.append(proc)
        conns.append(parent_end)
    try:
        return _drive(server, workers, conns, epoch_ns, idle, result, args)
    finally:
        for proc in workers:
            proc.join(15)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def _drive(
    server: Running,
    workers: list[Any],
    conns: list[Connection],
    epoch_ns: int,
    idle: ProcSample,
    result: Result,
    args: argparse.Namespace,
) -> tuple[Result, list[dict[str, Any]]]:
    sockets = args.rooms * args.clients
    log(f"{server.name}: connecting {sockets} clients from {len(workers)} processes")
    connect_budget = args.connect_timeout + sockets / 20 + 60
    reports = _recv_all(conns, connect_budget, "their connections")
    server.check()
    connected = server.measured.sample()
    result.connected = sum(r["connected"] for r in reports)
    failures: Counter[str] = Counter()
    for r in reports:
        failures.update(r["failures"])
    result.failures = dict(failures)
    result.failed = sum(failures.values())
    result.connect_seconds = max(r["connect_seconds"] for r in reports)
    result.connect_cpu = connected.cpu - idle.cpu
    result.rss_connected = connected.rss
    log(f"{server.name}: {result.connected} connected, {result.failed} failed "
        f"in {result.connect_seconds:.1f} s")  # fmt: skip

    t0_us = (time.monotonic_ns() - epoch_ns) // 1000 + 500_000
    for conn in conns:
        conn.send(t0_us)
    t0 = (epoch_ns / 1e9) + t0_us / 1e6
    win_start, win_end = t0 + args.warmup, t0 + args.warmup + args.duration
    _sleep_until(win_start, 0.5)
    counters_start = server.urls.counters() if server.urls else {}
    start = server.measured.sample()
    eng_start = server.engines.sample() if server.engines else None
    peak = [start.rss, eng_start.rss if eng_start else 0]

    def sample_rss() -> None:
        peak[0] = max(peak[0], server.measured.sample().rss)
        if server.engines:
            peak[1] = max(peak[1], server.engines.sample().rss)

    profile = None
    if args.profile and server.name == "pocdojo":
        profile = args.data_dir / "profiles" / f"load-{server.proc.pid}.txt"
    native = args.profile == "native"
    with profiled(server.proc.pid, profile or Path(), enabled=bool(profile), native=native):
        _sleep_until(win_end, 0.5, sample_rss)
    end = server.measured.sample()
    eng_end = server.engines.sample() if server.engines else None
    if server.urls:
        counters_end = server.urls.counters()
        result.engine_counters = {
            k: v - counters_start.get(k, 0) if k != "redis_clients" else v
            for k, v in counters_end.items()
        }
    result.cpu_s = end.cpu - start.cpu
    result.rss_peak = max(peak[0], end.rss)
    if eng_start and eng_end:
        result.engine_cpu_s = eng_end.cpu - eng_start.cpu
        result.engine_rss_peak = max(peak[1], eng_end.rss)
    log(f"{server.name}: window over; draining {args.drain:.0f} s")
    finals = _recv_all(conns, args.drain + 120, "their results")
    result.rss_end = server.measured.sample().rss
    result.load_after = load_average()
    server.check()
    _merge(result, finals)
    if profile is not None:
        result.profile = summarize_profile(profile)
    return result, finals


def _merge(result: Result, finals: list[dict[str, Any]]) -> None:
    latencies: array[int] = array("q")
    lags: array[int] = array("q")
    closes: Counter[str] = Counter()
    for f in finals:
        result.sent_window += f["sent_window"]
        result.deflate_agreed += f["deflate_agreed"]
        result.expected_window += f["expected_window"]
        result.delivered_window += f["delivered_window"]
        result.duplicates += f["duplicates"]
        result.gaps += f["gaps"]
        result.echoes += f["echoes"]
        result.multi_marker_messages += f["multi_marker_messages"]
        result.client_cpu_s += f["cpu_window"]
        result.dropped += f["lost"] + sum(f["closed_by_server"].values())
        closes.update(f["closed_by_server"])
        if f["lost"]:
            closes["lost (no close frame)"] += f["lost"]
        latencies.frombytes(f["latencies_us"])
        lags.frombytes(f["send_lag_us"])
    result.closes = dict(closes)
    ordered = sorted(latencies)
    result.p50_ms, result.p95_ms, result.p99_ms = (
        quantile(ordered, q) / 1000 for q in (0.50, 0.95, 0.99)
    )
    result.max_ms = ordered[-1] / 1000 if ordered else float("nan")
    result.send_lag_p99_ms = quantile(sorted(lags), 0.99) / 1000


# --- targets ---------------------------------------------------------------------------------


@contextlib.contextmanager
def target(name: str, args: argparse.Namespace, tag: str) -> Iterator[tuple[Running, Any, str]]:
    """A started server, its rooms, and the framing to speak to it."""
    logs = args.data_dir / "logs" / tag
    if name == "pocdojo":
        with (
            engines(args.data_dir / "engines") as urls,
            pocdojo_server(urls, args.data_dir / "pocdojo" / tag) as server,
        ):
            log(f"pocdojo: creating {args.rooms} dojo sessions for {args.users} users over HTTP")
            dojos = asyncio.run(create_dojos(server.port, args.rooms, args.users))
            log(f"pocdojo: setup took {dojos.setup_seconds:.1f} s")
            rooms = [
                RoomSpec(i, path, tuple(tokens))
                for i, (path, tokens) in enumerate(zip(dojos.doc_paths, dojos.tokens, strict=True))
            ]
            server.extra["setup_seconds"] = dojos.setup_seconds
            yield server, rooms, "y-websocket"
    elif name == "reference":
        with reference_server(logs) as server:
            yield (
                server,
                [RoomSpec(i, f"/bench-{tag}-{i}") for i in range(args.rooms)],
                ("y-websocket"),
            )
    else:
        with hocuspocus_server(logs) as server:
            rooms = [RoomSpec(i, "/", doc_name=f"bench-{tag}-{i}") for i in range(args.rooms)]
            yield server, rooms, "hocuspocus"


# --- report ----------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / MiB:.0f}"


def _ratio(a: float, b: float) -> str:
    if not b or a != a or b != b:
        return "n/a"
    return f"{a / b:.2f}x"


def report(results: list[Result], args: argparse.Namespace, versions: dict[str, str]) -> str:
    offered = args.rooms * args.clients * args.rate
    lines = [
        "",
        f"Realtime load: {args.rooms} rooms x {args.clients} clients = "
        f"{args.rooms * args.clients} sockets, {args.rate:g} edits/s per client "
        f"(offered {offered:,.0f} updates/s, fan-out {offered * (args.clients - 1):,.0f} "
        f"receipts/s); warmup {args.warmup:g} s, measured {args.duration:g} s, "
        f"drain {args.drain:g} s; {args.client_procs} client processes",
        f"pocdojo {revision()}; machine: {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, node {_node_version()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
    ]
    header = (
        f"{'target':<11}{'conns ok/fail/drop':>20}{'connect s':>10}{'offered/s':>10}"
        f"{'fanout/s':>10}{'deliv%':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'CPU s':>8}{'%core':>7}{'RSS idle/conn/peak MiB':>24}{'KiB/conn':>9}"
        f"{'client%':>9}"
    )
    lines += [header, "-" * len(header)]
    for r in results:
        conns = f"{r.connected}/{r.failed}/{r.dropped}"
        rss = f"{_mib(r.rss_idle)}/{_mib(r.rss_connected)}/{_mib(r.rss_peak)}"
        lines.append(
            f"{r.target:<11}{conns:>20}{r.connect_seconds:>10.1f}{r.offered_per_s:>10.0f}"
            f"{r.delivered_per_s:>10.0f}{r.delivery_pct:>8.1f}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}"
            f"{r.p99_ms:>9.1f}{r.max_ms:>9.1f}{r.cpu_s:>8.1f}"
            f"{100 * r.cpu_s / r.duration:>7.0f}{rss:>24}{r.rss_per_conn / 1024:>9.1f}"
            f"{100 * r.client_cpu_s / r.duration:>9.0f}"
        )
    lines.append("")
    for r in results:
        notes = [
            f"load avg {r.load_before} -> {r.load_after}",
            f"permessage-deflate on {r.deflate_agreed} sockets",
        ]
        if r.engine_cpu_s is not None:
            notes.append(
                f"PostgreSQL+Valkey CPU {r.engine_cpu_s:.1f} s "
                f"({100 * r.engine_cpu_s / r.duration:.0f}% core), "
                f"RSS peak {_mib(r.engine_rss_peak or 0)} MiB"
            )
        if r.engine_counters:
            c = r.engine_counters
            notes.append(
                f"in the window: Redis commands {c.get('redis_commands', '?')}, "
                f"updates logged to PostgreSQL {c.get('pg_updates_logged', '?')} "
                f"(of {r.sent_window} sent); Redis clients at the end "
                f"{c.get('redis_clients', '?')}"
            )
        if r.connected:
            notes.append(f"connect CPU {1000 * r.connect_cpu / r.connected:.2f} ms/socket")
        notes.append(f"send lag p99 {r.send_lag_p99_ms:.1f} ms")
        notes.append(f"echoes {r.echoes}, duplicates {r.duplicates}, gaps {r.gaps}, "
                     f"multi-edit messages {r.multi_marker_messages}")  # fmt: skip
        if r.failures:
            notes.append(f"connect failures: {r.failures}")
        if r.closes:
            notes.append(f"dropped during run: {r.closes}")
        if r.setup_seconds is not None:
            notes.append(f"HTTP setup {r.setup_seconds:.1f} s")
        lines.append(f"  {r.target}: " + "; ".join(notes))
    by_name = {r.target: r for r in results}
    ours = by_name.get("pocdojo")
    if ours:
        for other_name in ("reference", "hocuspocus"):
            other = by_name.get(other_name)
            if other is None:
                continue
            lines.append(
                f"pocdojo / {other_name}: throughput "
                f"{_ratio(ours.delivered_per_s, other.delivered_per_s)}, "
                f"p50 {_ratio(ours.p50_ms, other.p50_ms)}, "
                f"p95 {_ratio(ours.p95_ms, other.p95_ms)}, "
                f"p99 {_ratio(ours.p99_ms, other.p99_ms)}, CPU {_ratio(ours.cpu_s, other.cpu_s)} "
                f"(with PostgreSQL+Valkey "
                f"{_ratio(ours.cpu_s + (ours.engine_cpu_s or 0), other.cpu_s)}), "
                f"RSS/conn {_ratio(ours.rss_per_conn, other.rss_per_conn)}"
            )
    return "\n".join(lines)


def _node_version() -> str:
    import subprocess

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    return "?"


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    limit = raise_nofile()
    sockets = args.rooms * args.clients
    if sockets + 1000 > limit:
        log(f"warning: RLIMIT_NOFILE is {limit}, the servers need {sockets}+ descriptors")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    versions = js_versions()
    results: list[Result] = []
    tag = uuid.uuid4().hex[:6]
    for name in args.targets:
        with target(name, args, tag) as (server, rooms, framing):
            result = run_load(server, rooms, framing, args)
            result.setup_seconds = server.extra.get("setup_seconds")
            results.append(result)
            log(f"{name}: {result.delivered_per_s:.0f} receipts/s, p99 {result.p99_ms:.1f} ms")
        time.sleep(1.0)
    text = report(results, args, versions)
    print(text, flush=True)
    for r in results:
        if r.profile:
            print(f"\n{r.target} server profile during the window:\n{r.profile}", flush=True)
    if args.json:
        payload = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "versions": versions,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
