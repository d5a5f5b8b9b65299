"""Cross-node fan-out: pocdojo's bus on one Valkey against the bus on a Valkey cluster.

``--nodes`` N (2) ``pocdojo serve`` processes share the dojo rooms; the clients of each room
are spread over them round robin (client c of a room on node c mod N), so most receipts cross
nodes: the edit goes from the sender's node into the room's Redis stream, the doorbell wakes
the other nodes, and they read the stream and fan the edit out to their own clients. The same
load (``--rooms`` R x ``--clients`` C, ``--rate`` edits/s per client, as ``load.py`` drives
it) runs, in one invocation, on two configurations, each with fresh node processes:

* ``single`` -- ``REDIS_URL`` = one embedded Valkey (the one ``load.py`` uses): every node
  hears every doorbell on one pub/sub channel, and each batch a node publishes is one script
  call;
* ``cluster`` -- ``REDIS_CLUSTER=true`` on a fresh ``--primaries`` (3) primary Valkey cluster
  with a replica each (``pocdojo.core.valkeycluster``), the embedded Valkey as
  ``JOB_REDIS_URL`` only: a room's stream and doorbell live in its hash slot, each batch is
  one script call per room, and a node subscribes (SSUBSCRIBE) to the bells of the rooms it
  holds only.

``--repeat`` K alternates single and cluster K times. Reported per run and as medians:
delivery % (receipts over R x (C-1) per edit), fan-out latency p50/p95/p99 over every receipt
and over the receipts on another node than the sender's (``x``), the nodes' CPU seconds in the
window (summed), Redis CPU seconds (the one Valkey; or every process of the cluster, replicas
included) and the Redis commands executed (the one Valkey; the cluster's primaries); then
cluster / single for each.

The embedded Valkey's RDB snapshots are turned off for the run (the cluster's nodes take none
either) and restored at the end; it is emptied before each configuration. PostgreSQL is the
embedded one ``load.py`` uses, a fresh tenant each configuration. The nodes run a copy of
``pocdojo/`` taken at the start (``--no-snapshot``: the checkout), so that edits made to the
checkout meanwhile do not change the code between configurations.

``--baseline REV`` also runs each configuration on ``pocdojo/`` as it is at git revision REV
(``config@REV``), alternated with the current code, and reports current / baseline: a change
measured before and after in the same run.

    .venv/bin/python bench/realtime/bus.py                      # 20 x 6, 2 edits/s, 15 s
    .venv/bin/python bench/realtime/bus.py --repeat 3 --json bus.json
    .venv/bin/python bench/realtime/bus.py --configs single --baseline HEAD~1 --repeat 3

Everything runs on 127.0.0.1; every process is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from _targets import (
    EngineUrls,
    Measured,
    ProcSample,
    Running,
    create_dojos,
    engines,
    load_average,
    log,
    pocdojo_server,
    postgres_pids,
    revision,
    valkey_pids,
)
from _wsclient import RoomSpec, raise_nofile
from load import Result, add_load_arguments, quantile, run_clients

from pocdojo.core.valkeycluster import ValkeyCluster, valkey_cluster
from pocdojo.realtime.bus import cluster_stream_key

CONFIGS = ("single", "cluster")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=2, help="pocdojo serve processes")
    add_load_arguments(parser, rooms=20, clients=6, rate=2.0, duration=15.0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each configuration, alternated"
    )
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}"
    )
    parser.add_argument("--primaries", type=int, default=3, help="cluster primaries (>= 3)")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(".bench/realtime"),
        help="embedded engines (shared with load.py), node logs under bus/",
    )  # fmt: skip
    parser.add_argument(
        "--snapshot", action=argparse.BooleanOptionalAction, default=True,
        help="run the nodes on a copy of pocdojo/ taken at the start (kept under --data-dir): "
        "edits to the checkout during the run change nothing",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", metavar="REV",
        help="also run each configuration on pocdojo/ at this git revision, alternated",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs: {', '.join(sorted(unknown))}")
    if args.nodes < 1 or args.repeat < 1 or args.primaries < 3:
        parser.error("--nodes and --repeat must be at least 1, --primaries at least 3")
    if args.client_procs <= 0:
        args.client_procs = max(1, min(4, -(-args.rooms * args.clients // 2500)))
    args.client_procs = min(args.client_procs, args.rooms)
    args.profile = None  # run_clients' py-spy option: not offered here
    return args


# --- measuring groups of processes -----------------------------------------------------------


class Groups(Measured):
    """Named sets of processes sampled together. ``sample`` sums the ``counted`` ones (what
    ``run_clients`` reports as its engines: here the Redis servers of the bus) and keeps every
    group's sample, so the first and the last call (``run_clients`` makes them at the start
    and the end of the window) give each group's CPU over the window."""

    def __init__(self, groups: dict[str, Measured], counted: Sequence[str]) -> None:
        self.groups = groups
        self.counted = list(counted)
        self.history: list[dict[str, ProcSample]] = []

    def processes(self) -> list[Any]:  # psutil.Process
        return [proc for name in self.counted for proc in self.groups[name].processes()]

    def sample(self) -> ProcSample:
        now = {name: measured.sample() for name, measured in self.groups.items()}
        self.history.append(now)
        return ProcSample(
            sum(now[name].cpu for name in self.counted),
            sum(now[name].rss for name in self.counted),
        )

    def window_cpu(self) -> dict[str, float]:
        if len(self.history) < 2:
            return {}
        first, last = self.history[0], self.history[-1]
        return {name: last[name].cpu - first[name].cpu for name in self.groups}


@dataclass(frozen=True)
class BusUrls(EngineUrls):
    """The engines, with Redis commands counted on the bus's servers (``counted``: the one
    Valkey, or the cluster's primaries) and, on a cluster, on the job queue's Valkey apart."""

    counted: tuple[str, ...] = ()
    jobs: str | None = None

    def counters(self) -> dict[str, int]:
        found = super().counters()  # PostgreSQL's rows (and self.redis's INFO, replaced here)
        found.pop("redis_commands", None)
        found.pop("redis_clients", None)
        commands = clients = 0
        try:
            for url in self.counted:
                info = _info(url)
                commands += int(info["total_commands_processed"])
                clients += int(info["connected_clients"])
            found["redis_commands"], found["redis_clients"] = commands, clients
            if self.jobs:
                found["jobs_redis_commands"] = int(_info(self.jobs)["total_commands_processed"])
        except (redis.RedisError, KeyError, ValueError) as exc:
            log(f"could not count Redis commands: {exc}")
        return found


def _info(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        info: dict[str, Any] = client.info()  # type: ignore[assignment]
        return info
    finally:
        client.close()


@dataclass
class Nodes(Running):
    """Several ``pocdojo serve`` nodes, standing as one server for ``run_clients``."""

    nodes: list[Running] = field(default_factory=list)

    def check(self) -> None:
        for node in self.nodes:
            node.check()


# --- one configuration -----------------------------------------------------------------------


@dataclass
class Run:
    config: str
    repeat: int
    result: Result
    cross_receipts: int = 0
    cross_p50_ms: float = float("nan")
    cross_p95_ms: float = float("nan")
    cross_p99_ms: float = float("nan")
    cpu_by_group: dict[str, float] = field(default_factory=dict)
    rooms_per_primary: dict[str, int] = field(default_factory=dict)
    log_levels: dict[str, int] = field(default_factory=dict)
    log_excerpts: list[str] = field(default_factory=list)
    setup_seconds: float = 0.0
    # From the nodes' /metrics at the end, summed (the whole run, warmup and drain included):
    # updates accepted from sockets, and updates another node accepted that a node stored.
    node_metrics: dict[str, float] = field(default_factory=dict)
    code: str = ""  # digest of the pocdojo/ the nodes ran (``code_digest``)

    @property
    def node_cpu_s(self) -> float:
        return self.result.cpu_s

    @property
    def redis_cpu_s(self) -> float:
        return self.result.engine_cpu_s or 0.0

    @property
    def redis_commands_per_s(self) -> float:
        commands = self.result.engine_counters.get("redis_commands")
        return commands / self.result.duration if commands is not None else float("nan")

    @property
    def client_pct(self) -> float:
        return 100 * self.result.client_cpu_s / self.result.duration


REPO = Path(__file__).resolve().parents[2]


def code_digest(tree: Path) -> str:
    """A digest of the files of a ``pocdojo`` package tree (caches left out)."""
    digest = hashlib.sha1()
    for path in sorted(tree.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


@contextlib.contextmanager
def code_snapshot(dest: Path | None) -> Iterator[dict[str, str]]:
    """The environment that makes the nodes run a copy of ``pocdojo/`` taken now, under
    ``dest`` (kept, to compare later), so that edits to the checkout during a run change no
    configuration's code. ``dest`` None: the checkout itself, as it is when each node starts."""
    if dest is None:
        yield {}
        return
    shutil.copytree(
        REPO / "pocdojo", dest / "pocdojo", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = dict(os.environ, PYTHONPATH=str(dest))
    found = subprocess.run(
        # -P: no current directory on the path, as for the nodes' console script
        [sys.executable, "-P", "-c", "import pocdojo; print(pocdojo.__file__)"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    if not found.startswith(str(dest)):
        raise SystemExit(f"PYTHONPATH={dest} still imports pocdojo from {found}")
    log(f"nodes run a copy of pocdojo/ taken now: {dest / 'pocdojo'}")
    yield {"PYTHONPATH": str(dest)}


def code_at(rev: str, dest: Path) -> dict[str, str]:
    """The environment that makes the nodes run ``pocdojo/`` as it is at git revision ``rev``,
    extracted under ``dest``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "pocdojo"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    log(f"baseline: pocdojo/ at {rev} in {dest / 'pocdojo'}")
    return {"PYTHONPATH": str(dest)}


def _cluster_processes(cluster: ValkeyCluster) -> tuple[list[int], list[int], list[int]]:
    """The cluster's primaries' ports, and the pids of its primaries and of its replicas."""
    ports, primaries, replicas = [], [], []
    for port in cluster.ports:
        pid = int(cluster.info(port, "server")["process_id"].strip())
        if cluster.info(port, "replication").get("role", "").strip() == "master":
            ports.append(port)
            primaries.append(pid)
        else:
            replicas.append(pid)
    return ports, primaries, replicas


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.flushall()
    finally:
        client.close()


@contextlib.contextmanager
def no_snapshots(url: str) -> Iterator[None]:
    """The embedded Valkey without RDB snapshots while inside (as the cluster's nodes)."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    config: dict[str, Any] = client.config_get("save")  # type: ignore[assignment]
    saved = str(config.get("save", ""))
    client.config_set("save", "")
    try:
        yield
    finally:
        with contextlib.suppress(redis.RedisError):
            client.config_set("save", saved)
        client.close()


_QUIET = (
    "started ",
    "using the configured",
    "pocdojo listening",
    "applied migrations",
    "stopping",
    "stopped",
)


def _scan_logs(paths: Sequence[Path]) -> tuple[dict[str, int], list[str]]:
    """Lines the nodes logged (``LOG_LEVEL=WARNING``: warnings and errors only) by level, and
    the first few of them."""
    levels: Counter[str] = Counter()
    excerpts: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                text = line.strip()
                if not text or text.startswith(_QUIET):
                    continue
                level = "other"
                with contextlib.suppress(ValueError, AttributeError):
                    level = str(json.loads(text).get("level", "other"))
                levels[level] += 1
                if len(excerpts) < 8:
                    excerpts.append(f"{path.parent.name}: {text[:400]}")
    return dict(levels), excerpts


def run_config(
    config: str,
    repeat: int,
    urls: EngineUrls,
    args: argparse.Namespace,
    tag: str,
    code_env: dict[str, str],
) -> Run:
    """Fresh nodes on ``config``'s Redis; the rooms, the clients, the figures."""
    base = (args.data_dir / "bus" / tag / f"{config}-{repeat + 1}").resolve()
    name = f"{config} {repeat + 1}/{args.repeat}"
    valkey = Measured(valkey_pids(urls.redis))
    if not valkey.roots:
        log(f"warning: no valkey-server process found for {urls.redis}: its CPU reads 0")
    postgres = Measured(postgres_pids(args.data_dir / "engines"), children=True)
    cluster: ValkeyCluster | None = None
    node_logs: list[Path] = []
    code = code_digest(Path(code_env.get("PYTHONPATH", REPO)) / "pocdojo")
    with contextlib.ExitStack() as stack:
        _flush(urls.redis)
        extra = dict(code_env)
        if config.partition("@")[0] == "cluster":
            log(f"{name}: starting a Valkey cluster of {args.primaries} primaries + replicas")
            workdir = base / "valkey-cluster"
            stack.callback(shutil.rmtree, workdir, True)
            cluster = stack.enter_context(valkey_cluster(workdir, primaries=args.primaries))
            ports, primary_pids, replica_pids = _cluster_processes(cluster)
            log(f"{name}: cluster up, primaries on {ports}")
            groups = Groups(
                {
                    "primaries": Measured(primary_pids),
                    "replicas": Measured(replica_pids),
                    "jobs valkey": valkey,
                    "postgres": postgres,
                },
                counted=("primaries", "replicas"),
            )
            counted = tuple(f"redis://127.0.0.1:{port}/0" for port in ports)
            bus_urls = BusUrls(urls.owner, urls.app, urls.redis, urls.measured, counted, urls.redis)
            extra.update(REDIS_URL=cluster.url, REDIS_CLUSTER="true", JOB_REDIS_URL=urls.redis)
        else:
            groups = Groups({"valkey": valkey, "postgres": postgres}, counted=("valkey",))
            bus_urls = BusUrls(urls.owner, urls.app, urls.redis, urls.measured, (urls.redis,))
        secret = secrets.token_urlsafe(36)  # one for all nodes: a token from one is good on all
        nodes: list[Running] = []
        for i in range(args.nodes):
            node = stack.enter_context(
                pocdojo_server(
                    urls, base / f"node{i}", label=f"{name} node {i}", JWT_SECRET=secret, **extra
                )
            )
            nodes.append(node)
            node_logs.append(node.log_path)
        log(f"{name}: creating {args.rooms} dojo sessions for {args.users} users over HTTP")
        dojos = asyncio.run(create_dojos(nodes[0].port, args.rooms, args.users))
        log(f"{name}: setup took {dojos.setup_seconds:.1f} s")
        rooms = [
            RoomSpec(i, path, tuple(tokens))
            for i, (path, tokens) in enumerate(zip(dojos.doc_paths, dojos.tokens, strict=True))
        ]
        group = Nodes(
            name=config,
            proc=nodes[0].proc,
            port=nodes[0].port,
            log_path=nodes[0].log_path,
            measured=Measured([node.proc.pid for node in nodes]),
            engines=groups,
            urls=bus_urls,
            nodes=nodes,
        )
        result, finals = run_clients(
            group, rooms, "y-websocket", args, ports=[node.port for node in nodes]
        )
        run = Run(config, repeat, result, setup_seconds=dojos.setup_seconds, code=code)
        run.cpu_by_group = groups.window_cpu()
        run.node_metrics = _node_metrics([node.port for node in nodes])
        _cross(run, finals)
        if cluster is not None:
            where = dict.fromkeys(sorted(str(port) for port in ports), 0)
            for sid in dojos.session_ids:
                where[str(cluster.primary_of(cluster_stream_key(sid)))] += 1
            run.rooms_per_primary = where
        log(f"{name}: stopping the nodes")
    run.log_levels, run.log_excerpts = _scan_logs(node_logs)
    for line in run.log_excerpts:
        log(f"{name}: node log: {line}")
    return run


_METRICS = ("pocdojo_doc_updates_total", "pocdojo_remote_updates_stored_total")


def _node_metrics(ports: Sequence[int]) -> dict[str, float]:
    """``_METRICS`` from every node's ``/metrics``, summed."""
    import urllib.request

    found: dict[str, float] = dict.fromkeys(_METRICS, 0.0)
    for port in ports:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                text = resp.read().decode()
        except OSError as exc:
            log(f"could not read /metrics of the node on {port}: {exc}")
            continue
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in found:
                found[name] += float(value)
    return found


def _cross(run: Run, finals: list[dict[str, Any]]) -> None:
    latencies: array[int] = array("q")
    for final in finals:
        latencies.frombytes(final.get("cross_latencies_us", b""))
    ordered = sorted(latencies)
    run.cross_receipts = len(ordered)
    run.cross_p50_ms, run.cross_p95_ms, run.cross_p99_ms = (
        quantile(ordered, q) / 1000 for q in (0.50, 0.95, 0.99)
    )


# --- report ----------------------------------------------------------------------------------

# (heading, width, format, value of a run)
_COLUMNS: list[tuple[str, int, str, Callable[[Run], float]]] = [
    ("deliv%", 8, ".1f", lambda r: r.result.delivery_pct),
    ("p50 ms", 8, ".1f", lambda r: r.result.p50_ms),
    ("p95 ms", 8, ".1f", lambda r: r.result.p95_ms),
    ("p99 ms", 8, ".1f", lambda r: r.result.p99_ms),
    ("xp50 ms", 9, ".1f", lambda r: r.cross_p50_ms),
    ("xp95 ms", 9, ".1f", lambda r: r.cross_p95_ms),
    ("xp99 ms", 9, ".1f", lambda r: r.cross_p99_ms),
    ("node CPU s", 11, ".2f", lambda r: r.node_cpu_s),
    ("Redis CPU s", 12, ".2f", lambda r: r.redis_cpu_s),
    ("Redis cmd/s", 12, ".0f", lambda r: r.redis_commands_per_s),
    ("client%", 8, ".0f", lambda r: r.client_pct),
    ("rows/edit", 10, ".2f", lambda r: _rows_per_edit(r)),
]


def _rows_per_edit(run: Run) -> float:
    """Rows PostgreSQL logged in the window per edit sent in it."""
    logged = run.result.engine_counters.get("pg_updates_logged")
    sent = run.result.sent_window
    return logged / sent if logged is not None and sent else float("nan")


def _median(values: Sequence[float]) -> float:
    kept = [v for v in values if v == v]
    return statistics.median(kept) if kept else float("nan")


def medians(runs: Sequence[Run], config: str) -> dict[str, float]:
    mine = [r for r in runs if r.config == config]
    return {heading: _median([value(r) for r in mine]) for heading, _, _, value in _COLUMNS}


def _cells(values: Sequence[float]) -> str:
    return "".join(
        f"{v:>{width}{fmt}}" for v, (_, width, fmt, _) in zip(values, _COLUMNS, strict=True)
    )


def _ratio(a: float, b: float) -> str:
    if not b or a != a or b != b:
        return "n/a"
    return f"{a / b:.2f}x"


def report(runs: list[Run], args: argparse.Namespace, rev: str) -> str:
    offered = args.rooms * args.clients * args.rate
    receipts = offered * (args.clients - 1)
    per_node = [len(range(n, args.clients, args.nodes)) for n in range(args.nodes)]
    cross = sum(offered / args.clients * count * (args.clients - count) for count in per_node)
    lines = [
        "",
        f"Bus across {args.nodes} nodes: {args.rooms} rooms x {args.clients} clients = "
        f"{args.rooms * args.clients} sockets (a room's clients round robin over the nodes), "
        f"{args.rate:g} edits/s per client (offered {offered:,.0f} updates/s, fan-out "
        f"{receipts:,.0f} receipts/s, {cross:,.0f} of them across nodes); warmup "
        f"{args.warmup:g} s, measured {args.duration:g} s, drain {args.drain:g} s; "
        f"{args.client_procs} client processes; {args.repeat} run(s) of each configuration",
        f"single: one Valkey (snapshots off); cluster: {args.primaries} primaries + "
        f"{args.primaries} replicas, job queue on the single Valkey",
        f"pocdojo {rev} at the start; nodes on "
        + (f"a copy of pocdojo/ ({args.code_dir})" if args.snapshot else "the checkout")
        + f"; machine: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}",
        "",
    ]
    head = "".join(f"{heading:>{width}}" for heading, width, _, _ in _COLUMNS)
    header = f"{'config':<18}{'run':>4}{'conns ok/fail/drop':>20}{head}"
    lines += [header, "-" * len(header)]
    for r in runs:
        res = r.result
        conns = f"{res.connected}/{res.failed}/{res.dropped}"
        cells = _cells([value(r) for _, _, _, value in _COLUMNS])
        lines.append(f"{r.config:<18}{r.repeat + 1:>4}{conns:>20}{cells}")
    lines.append("")
    for r in runs:
        res = r.result
        notes = [f"pocdojo/ digest {r.code}", f"load avg {res.load_before} -> {res.load_after}"]
        notes.append(
            "CPU s by group " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu_by_group.items())
        )
        counters = res.engine_counters
        notes.append(
            f"in the window: Redis commands {counters.get('redis_commands', '?')}"
            + (
                f" (+ {counters['jobs_redis_commands']} on the job Valkey)"
                if "jobs_redis_commands" in counters
                else ""
            )
            + f", updates logged to PostgreSQL {counters.get('pg_updates_logged', '?')} "
            f"(of {res.sent_window} sent); Redis clients at the end "
            f"{counters.get('redis_clients', '?')}"
        )
        notes.append(f"cross-node receipts {r.cross_receipts} of {res.delivered_window}")
        if r.node_metrics:
            notes.append(
                "whole run: updates accepted "
                f"{r.node_metrics['pocdojo_doc_updates_total']:.0f}, stored by a node that had "
                f"them from another {r.node_metrics['pocdojo_remote_updates_stored_total']:.0f}"
            )
        if r.rooms_per_primary:
            notes.append(
                "rooms per primary " + "/".join(str(n) for n in r.rooms_per_primary.values())
            )
        notes.append(f"send lag p99 {res.send_lag_p99_ms:.1f} ms, max latency {res.max_ms:.1f} ms")
        notes.append(f"duplicates {res.duplicates}, gaps {res.gaps}")
        if res.failures:
            notes.append(f"connect failures: {res.failures}")
        if res.closes:
            notes.append(f"dropped during run: {res.closes}")
        notes.append(
            "node log lines: "
            + (", ".join(f"{k} {v}" for k, v in sorted(r.log_levels.items())) or "none")
        )
        lines.append(f"  {r.config} {r.repeat + 1}: " + "; ".join(notes))
    for config in dict.fromkeys(r.config for r in runs):
        codes = sorted({r.code for r in runs if r.config == config})
        if len(codes) > 1:
            lines.append(f"  NOTE: {config}'s pocdojo/ changed during the run ({', '.join(codes)})")
    configs = [c for c in args.configs if any(r.config == c for r in runs)]
    lines += ["", f"Medians over {args.repeat} run(s):", header.replace("run", "   ", 1)]
    lines.append("-" * len(header))
    table = {config: medians(runs, config) for config in configs}
    for config, values in table.items():
        count = sum(1 for r in runs if r.config == config)
        lines.append(f"{config:<18}{count:>4}{'':>20}{_cells(list(values.values()))}")
    pairs = [("cluster", "single")] if "single" in table and "cluster" in table else []
    pairs += [(c, f"{c}@{args.baseline}") for c in CONFIGS if f"{c}@{args.baseline}" in table]
    for top, bottom in pairs:
        ratios = "".join(
            f"{_ratio(table[top][heading], table[bottom][heading]):>{width}}"
            for heading, width, _, _ in _COLUMNS
        )
        lines.append(f"{f'{top} / {bottom}':<42}{ratios}")
    return "\n".join(lines)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    raise_nofile()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    tag = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    runs: list[Run] = []
    rev = revision()
    code_dir = (args.data_dir / "bus" / tag / "code").resolve() if args.snapshot else None
    args.code_dir = code_dir
    with (
        code_snapshot(code_dir) as code_env,
        engines(args.data_dir / "engines") as urls,
        no_snapshots(urls.redis),
    ):
        envs = {config: code_env for config in args.configs}
        if args.baseline:
            base_env = code_at(args.baseline, (args.data_dir / "bus" / tag / "baseline").resolve())
            for config in args.configs:
                envs[f"{config}@{args.baseline}"] = base_env
        args.configs = list(envs)
        for repeat in range(args.repeat):
            for config, env in envs.items():
                log(f"{config} {repeat + 1}/{args.repeat}: load avg {load_average()}")
                run = run_config(config, repeat, urls, args, tag, env)
                runs.append(run)
                res = run.result
                log(
                    f"{config} {repeat + 1}/{args.repeat}: delivered {res.delivery_pct:.1f} %, "
                    f"p99 {res.p99_ms:.1f} ms (across nodes {run.cross_p99_ms:.1f}), node CPU "
                    f"{run.node_cpu_s:.2f} s, Redis CPU {run.redis_cpu_s:.2f} s"
                )
                time.sleep(1.0)
    print(report(runs, args, rev), flush=True)
    if args.json:
        payload = {
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "revision": rev,
            "runs": [asdict(r) for r in runs],
            "medians": {c: medians(runs, c) for c in args.configs},
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
