"""Chaos: three nodes, stock Yjs clients, nodes SIGKILLed and the engines restarted mid-edit.

Three ``pocdojo serve`` processes share a PostgreSQL and a Valkey of the test's own (so they
can be stopped, killed and started again). Stock y-websocket clients (tests/js/ychaos.js) sit
behind load balancers (tests/balancer.py) that send each new connection to a live node: three
writers type unique markers (``<w0:17>``) into ``Y.Text('code')`` all along, and delete a few
of their own; two listeners report what they see. While faults happen, PostgreSQL is read
straight from the tables every ``PROBE_EVERY`` seconds and decoded by stock Yjs
(tests/js/ystore.js) and by pycrdt. What must hold:

- every marker a listener on another node than its writer's saw (acknowledged: it went
  through the room's stream, so more than the writer's node holds it) more than
  ``DOJO_PERSIST_INTERVAL`` + 1 s before a probe is stored and readable by stock Yjs at that
  probe, and every deletion acknowledged that long before is stored too (what a killed node
  held with only its own clients comes back when they reconnect: checked at the end);
- stock Yjs and pycrdt read the same text from the same rows, at every probe;
- once the writers stop, every client converges on the same text holding every marker typed
  and none deleted; PostgreSQL then holds exactly that text, also after every node unloaded
  the room, and a fresh client loads it.

A probe that cannot reach PostgreSQL (while it restarts) is skipped. An update acknowledged
while PostgreSQL was down could not be stored then: its deadline runs from PostgreSQL's
return (``Ledger.deadline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from tests.balancer import Backends, Balancer
from tests.conftest import TEST_JWT_SECRET
from tests.helpers import end_process
from tests.realtime.test_multinode import _setup
from tests.restartable_engines import OwnEngines, own_engines
from tests.servers import Server, cli_env, serving
from tests.ystore import StoredRows, YjsReader, YjsReading, pycrdt_text, read_rows

pytestmark = pytest.mark.timeout(240)

PERSIST_INTERVAL = 0.2  # DOJO_PERSIST_INTERVAL (the default)
GRACE = 1.0  # what the server may take beyond it
DEADLINE = PERSIST_INTERVAL + GRACE
IDLE_UNLOAD = 0.5
PROBE_EVERY = 0.4
RATE = 15  # edits a second, per writer
DELETE_EVERY = 10  # every tenth edit of a writer deletes one of its markers
NODES = 3
WRITERS = {"w0": 0, "w1": 1, "w2": 2}  # name → preferred node
LISTENERS = {"l0": 1, "l1": 2}  # no listener prefers node 0: its writes are seen cross-node
WAIT = 15.0  # the longest wait for a condition (a client syncing, rooms unloading)
CONVERGE_WAIT = 10.0  # clients reconnect within 2.5 s (y-websocket's longest backoff)

MARKER = re.compile(r"<[a-z0-9]+:\d+>")


def markers(text: str) -> set[str]:
    return set(MARKER.findall(text))


def sample(items: set[str] | list[str], count: int = 12) -> str:
    ordered = sorted(items, key=_marker_order)
    more = f" … (+{len(ordered) - count})" if len(ordered) > count else ""
    return " ".join(ordered[:count]) + more


def _marker_order(marker: str) -> tuple[str, int]:
    name, number = marker[1:-1].split(":")
    return name, int(number)


# --- what happened, and when -----------------------------------------------------------------


class Timeline:
    """Faults and phases, in seconds since the start of typing."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def rel(self, t: float) -> float:
        return t - self.t0

    def note(self, what: str) -> None:
        self.events.append((time.monotonic(), what))

    def format(self) -> str:
        return "\n".join(f"  {self.rel(t):7.2f} s  {what}" for t, what in self.events)


@dataclass(frozen=True)
class Ack:
    """A marker (or its deletion) first reported by a listener."""

    at: float
    listener: str
    node: int | None


@dataclass
class Ledger:
    """Every marker acknowledged, every deletion announced and acknowledged."""

    timeline: Timeline
    acked: dict[str, Ack] = field(default_factory=dict)
    deleting: dict[str, float] = field(default_factory=dict)
    gone: dict[str, Ack] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # Yjs client id → client name
    # PostgreSQL outages: (stopped at, back at or None while down).
    outages: list[tuple[float, float | None]] = field(default_factory=list)
    # The node a writer's connection goes to now: acknowledgments come from other nodes.
    writer_node: Callable[[str], int | None] = lambda writer: None
    _waiters: list[tuple[Callable[[str, Ack], bool], asyncio.Future[str]]] = field(
        default_factory=list
    )

    def _elsewhere(self, name: str, node: int | None) -> bool:
        """Whether a listener on ``node`` saw marker ``name`` on another node than its
        writer's (a marker ``<w1:17>`` is writer w1's)."""
        writer = name[1:].split(":", 1)[0]
        return node is None or node != self.writer_node(writer)

    def seen(self, names: list[str], listener: str, node: int | None) -> None:
        now = time.monotonic()
        for name in names:
            if name not in self.acked and self._elsewhere(name, node):
                ack = self.acked[name] = Ack(now, listener, node)
                self._wake(name, ack)

    def vanished(self, names: list[str], listener: str, node: int | None) -> None:
        now = time.monotonic()
        for name in names:
            if self._elsewhere(name, node):
                self.gone.setdefault(name, Ack(now, listener, node))

    def deadline(self, at: float) -> float:
        """When something acknowledged at ``at`` must be stored: ``DEADLINE`` later, or
        ``DEADLINE`` after PostgreSQL came back if it was down in between."""
        due = at + DEADLINE
        for down, up in self.outages:
            back = math.inf if up is None else up
            if down < due and at <= back:
                due = max(due, back + DEADLINE)
        return due

    async def next_ack(self, predicate: Callable[[str, Ack], bool], within: float) -> str:
        """Wait for the next acknowledgment that ``predicate`` accepts; the marker."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, within)
        finally:
            self._waiters.remove(waiter)

    def _wake(self, name: str, ack: Ack) -> None:
        for predicate, future in self._waiters:
            if not future.done() and predicate(name, ack):
                future.set_result(name)

    def pending(self, reading: YjsReading) -> str:
        """What Yjs waits for, by client name: ``w1 from clock 1505``."""
        if reading.pending_structs is None:
            waits = "no pending structs"
        else:
            waits = "pending structs: " + ", ".join(
                f"{self.names.get(client, client)} from clock {clock}"
                for client, clock in sorted(reading.pending_structs.items())
            )
        return waits + (", pending deletes" if reading.pending_ds else "")

    def describe_ack(self, name: str) -> str:
        ack = self.acked.get(name)
        if ack is None:
            return f"{name} (never acknowledged)"
        return f"{name} acked at {self.timeline.rel(ack.at):.2f} s by {ack.listener} on n{ack.node}"


# --- the stock clients -----------------------------------------------------------------------


class ChaosClient:
    """A Node process (tests/js/ychaos.js) with a stock WebsocketProvider behind a balancer."""

    def __init__(
        self, name: str, proc: asyncio.subprocess.Process, balancer: Balancer, ledger: Ledger
    ) -> None:
        self.name = name
        self.proc = proc
        self.balancer = balancer
        self.ledger = ledger
        self.status = "new"
        self.synced = False
        self.terminal: dict[str, Any] | None = None
        self.errors: list[str] = []
        self.stderr: list[str] = []
        self.answers: dict[int, dict[str, Any]] = {}
        self._changed = asyncio.Event()
        self._next_id = 0
        self._tasks = [
            asyncio.create_task(self._read_events()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        js_dir: Path,
        name: str,
        balancer: Balancer,
        ledger: Ledger,
        session_path: str,
        token: str,
        *,
        report: bool,
    ) -> ChaosClient:
        config = {
            "serverUrl": f"ws://127.0.0.1:{balancer.port}{session_path}",
            "room": "doc",
            "token": token,
            "name": name,
            "rate": RATE,
            "deleteEvery": DELETE_EVERY,
            "report": report,
        }
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(js_dir / "ychaos.js"),
            json.dumps(config),
            cwd=js_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        return cls(name, proc, balancer, ledger)

    @property
    def node(self) -> int | None:
        """The node its connection goes to now, if it has one."""
        current = self.balancer.current
        return current[0] if current else None

    async def _read_events(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            event: dict[str, Any] = json.loads(raw)
            kind = event["event"]
            if kind == "seen":
                self.ledger.seen(event["markers"], self.name, self.node)
            elif kind == "gone":
                self.ledger.vanished(event["markers"], self.name, self.node)
            elif kind == "deleting":
                self.ledger.deleting.setdefault(event["marker"], time.monotonic())
            elif kind == "status":
                self.status = event["status"]
                if self.status != "connecting":
                    where = f" to n{self.node}" if self.status == "connected" else ""
                    self.ledger.timeline.note(f"{self.name} {self.status}{where}")
            elif kind == "synced":
                self.synced = event["synced"]
            elif kind == "terminal":
                self.terminal = event
            elif kind == "error":
                self.errors.append(event["message"])
            elif kind == "ready":
                self.ledger.names[str(event["clientId"])] = self.name
            elif kind == "done":
                self.answers[event["id"]] = event
            self._changed.set()
        self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace").rstrip())

    async def request(self, cmd: str, within: float = 10.0) -> dict[str, Any]:
        """Send a command and wait for its answer."""
        assert self.proc.stdin is not None
        self._next_id += 1
        request_id = self._next_id
        self.proc.stdin.write(json.dumps({"cmd": cmd, "id": request_id}).encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(within):
            while request_id not in self.answers:
                if self._tasks[0].done():
                    raise AssertionError(f"{self.name} exited\n{self.report()}")
                self._changed.clear()
                await self._changed.wait()
        answer = self.answers.pop(request_id)
        assert answer["ok"], f"{self.name}: {cmd} failed: {answer.get('error')}"
        return answer

    async def wait_synced(self, within: float = WAIT) -> None:
        try:
            async with asyncio.timeout(within):
                while not self.synced:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name} never synced\n{self.report()}") from None

    def report(self) -> str:
        return (
            f"[{self.name}] returncode={self.proc.returncode} status={self.status} "
            f"synced={self.synced} node={self.node} routed={dict(self.balancer.routed)} "
            f"terminal={self.terminal} errors={self.errors[-3:]} stderr={self.stderr[-5:]}"
        )

    async def stop(self) -> None:
        """End the process (EOF on stdin makes it exit); killed if it lingers."""
        await end_process(self.proc)
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --- the nodes -------------------------------------------------------------------------------


class Cluster:
    """``NODES`` slots, each running a ``pocdojo serve`` process or none (killed)."""

    def __init__(self, engines: OwnEngines, tmp_path: Path, stack: contextlib.ExitStack) -> None:
        self.env = cli_env(
            DATABASE_URL=engines.database_url,
            DATABASE_APP_URL=engines.database_app_url,
            REDIS_URL=engines.redis_url,
            JWT_SECRET=TEST_JWT_SECRET,
            DOJO_IDLE_UNLOAD=str(IDLE_UNLOAD),
            DOJO_PERSIST_INTERVAL=str(PERSIST_INTERVAL),
            LOG_LEVEL="WARNING",
            WORKER="false",  # no job worker: nothing here runs jobs, and the machine is small
        )
        self.tmp_path = tmp_path
        self.stack = stack
        self.nodes: list[Server | None] = [None] * NODES
        self.backends = Backends()
        self._started = 0

    def live(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node is not None]

    def server(self, index: int) -> Server:
        node = self.nodes[index]
        assert node is not None, f"n{index} is not running"
        return node

    async def start(self, index: int) -> None:
        """Start a new process in slot ``index`` and route clients to it once it answers."""
        assert self.nodes[index] is None
        self._started += 1
        tag = f"n{index}-{self._started}"
        node = self.stack.enter_context(
            serving(self.tmp_path / tag, self.env, self.tmp_path / f"{tag}-logs")
        )
        await asyncio.to_thread(node.wait_until_healthy)
        self.nodes[index] = node
        self.backends.up(index, node.port)
        for balancer in self.backends.balancers:
            if balancer.preferred == index:
                balancer.rebalance()

    async def kill(self, index: int) -> None:
        """SIGKILL, then drop the connections the balancers still route to it."""
        node = self.server(index)
        node.proc.kill()
        self.nodes[index] = None
        self.backends.down(index)
        await asyncio.to_thread(node.proc.wait, 10)

    async def rooms_active(self, http: aiohttp.ClientSession) -> dict[int, float]:
        """``pocdojo_rooms_active`` of every live node."""
        found: dict[int, float] = {}
        for index in self.live():
            url = f"http://127.0.0.1:{self.server(index).port}/metrics"
            async with http.get(url) as resp:
                body = await resp.text()
            for line in body.splitlines():
                if line.startswith("pocdojo_rooms_active "):
                    found[index] = float(line.split()[1])
        return found


# --- the probes ------------------------------------------------------------------------------


@dataclass
class Probe:
    """One read of PostgreSQL during the run, and what was wrong with it."""

    at: float  # when the read began
    rows: str
    yjs: YjsReading
    missing: dict[str, float] = field(default_factory=dict)  # marker → seconds past due
    undeleted: dict[str, float] = field(default_factory=dict)
    pycrdt_only: set[str] = field(default_factory=set)  # markers pycrdt shows and Yjs does not
    disagreement: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.missing or self.undeleted or self.disagreement)

    def describe(self, ledger: Ledger) -> str:
        lines = [
            f"probe at {ledger.timeline.rel(self.at):.2f} s read {self.rows}; Yjs has "
            f"{ledger.pending(self.yjs)}"
        ]
        if self.missing:
            late = max(self.missing.values())
            lines.append(
                f"  missing {len(self.missing)} acknowledged (up to {late:.2f} s past due): "
                f"{sample(list(self.missing))}"
            )
        if self.undeleted:
            lines.append(f"  deletions not stored: {sample(list(self.undeleted))}")
        if self.disagreement:
            lines.append(f"  {self.disagreement}")
        return "\n".join(lines)


class Prober:
    """Reads the session's rows from PostgreSQL and checks them against the ledger."""

    def __init__(self, url: str, session_id: UUID, reader: YjsReader, ledger: Ledger) -> None:
        self.url = url
        self.session_id = session_id
        self.reader = reader
        self.ledger = ledger
        self.probes: list[Probe] = []
        self.skipped = 0
        self._conn: Any = None

    async def read(self) -> tuple[float, StoredRows, YjsReading, str] | None:
        """The rows, as stock Yjs and pycrdt read them; None if PostgreSQL is unreachable."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self.url, timeout=2)
            at = time.monotonic()
            rows = await asyncio.wait_for(read_rows(self._conn, self.session_id), 5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            await self.close()
            return None
        yjs = await self.reader.read(rows)
        py = await asyncio.to_thread(pycrdt_text, rows)
        return at, rows, yjs, py

    async def probe(self) -> Probe | None:
        """One probe, checked and recorded; None if skipped."""
        got = await self.read()
        if got is None:
            self.skipped += 1
            return None
        at, rows, yjs, py = got
        probe = Probe(at, rows.describe(), yjs)
        stored, py_stored = markers(yjs.text), markers(py)
        for name, ack in list(self.ledger.acked.items()):
            due = self.ledger.deadline(ack.at)
            if due < at and name not in stored and name not in self.ledger.deleting:
                probe.missing[name] = at - due
        for name, ack in list(self.ledger.gone.items()):
            due = self.ledger.deadline(ack.at)
            if due < at and name in stored:
                probe.undeleted[name] = at - due
        if py != yjs.text:
            probe.pycrdt_only = py_stored - stored
            probe.disagreement = (
                f"stock Yjs and pycrdt read different texts ({len(yjs.text)} vs {len(py)} "
                f"chars); only Yjs: {sample(stored - py_stored)}; only pycrdt: "
                f"{sample(probe.pycrdt_only)}"
            )
        self.probes.append(probe)
        return probe

    async def run(self, stop: asyncio.Event) -> None:
        """Probe every ``PROBE_EVERY`` seconds until ``stop`` is set."""
        while not stop.is_set():
            started = time.monotonic()
            await self.probe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PROBE_EVERY - (time.monotonic() - started))

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    def report(self, timeline: Timeline, last_stored: set[str] | None) -> str:
        """What went wrong across the probes, or "" if nothing did.

        ``last_stored``: the markers PostgreSQL held at the end (None if unknown), to tell
        markers stored late from markers lost.
        """
        failed = [p for p in self.probes if p.failed]
        if not failed:
            return ""
        lines = [
            f"{len(failed)} of {len(self.probes)} probes failed ({self.skipped} skipped): "
            f"{sum(bool(p.missing) for p in failed)} missed acknowledged markers, "
            f"{sum(bool(p.undeleted) for p in failed)} kept acknowledged deletions undone, "
            f"{sum(bool(p.disagreement) for p in failed)} read differently by Yjs and pycrdt"
        ]
        ever: dict[str, list[Probe]] = {}
        for p in failed:
            for name in p.missing:
                ever.setdefault(name, []).append(p)
        if ever:
            lines.append(
                f"{len(ever)} acknowledged markers were missing from PostgreSQL as stock Yjs "
                f"reads it, more than {DEADLINE} s after a listener saw them:"
            )
            for name in sorted(ever, key=_marker_order)[:12]:
                at = [timeline.rel(p.at) for p in ever[name]]
                pending = any(name in p.pycrdt_only for p in ever[name])
                if name in self.ledger.deleting:
                    fate = "; deleted by its writer later"
                elif last_stored is None:
                    fate = ""
                elif name in last_stored:
                    fate = "; stored later"
                else:
                    fate = "; still missing at the end"
                lines.append(
                    f"  {self.ledger.describe_ack(name)}; missing at {len(at)} probes "
                    f"({at[0]:.2f}..{at[-1]:.2f} s)"
                    + (", pycrdt reads it (Yjs holds it back: a dependency is missing)" * pending)
                    + fate
                )
            if len(ever) > 12:
                lines.append(f"  … and {len(ever) - 12} more")
        firsts = {
            "first probe missing acknowledged markers": next(
                (p for p in failed if p.missing), None
            ),
            "first probe keeping a deletion undone": next((p for p in failed if p.undeleted), None),
            "first probe read differently by Yjs and pycrdt": next(
                (p for p in failed if p.disagreement), None
            ),
        }
        for title, probe in firsts.items():
            if probe is not None:
                lines.append(f"{title}: {probe.describe(self.ledger)}")
        return "\n".join(lines)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Chaos:
    """What a scenario drives: the nodes, the engines, and the record of what happened."""

    cluster: Cluster
    engines: OwnEngines
    timeline: Timeline
    ledger: Ledger
    clients: dict[str, ChaosClient]
    session_path: str
    guest_token: str
    js_dir: Path
    http: aiohttp.ClientSession

    async def pause(self, seconds: float) -> None:
        """Let the writers type for a while (the scenario's schedule, not a wait for a race)."""
        await asyncio.sleep(seconds)

    async def kill(self, index: int) -> None:
        self.timeline.note(f"SIGKILL n{index}")
        await self.cluster.kill(index)

    async def kill_after_ack(self, index: int) -> None:
        """SIGKILL node ``index`` right after a listener on another node saw an edit that a
        writer connected to ``index`` made: the edit is then, at best, in the node's
        0.2 s persistence window."""

        def wanted(name: str, ack: Ack) -> bool:
            writer = self.clients[name[1:].split(":")[0]]
            return writer.node == index and ack.node not in (None, index)

        try:
            marker = await self.ledger.next_ack(wanted, within=5)
        except TimeoutError:
            self.timeline.note(f"SIGKILL n{index} (no edit of its writers seen elsewhere in 5 s)")
        else:
            self.timeline.note(f"SIGKILL n{index} right after {self.ledger.describe_ack(marker)}")
        await self.cluster.kill(index)

    async def move(self, client: str, index: int) -> None:
        """Send a client's connection to node ``index`` (a network change, no fault)."""
        balancer = self.clients[client].balancer
        balancer.preferred = index
        balancer.rebalance()
        self.timeline.note(f"{client} moved to n{index}")

    async def restart(self, index: int) -> None:
        self.timeline.note(f"starting n{index}")
        await self.cluster.start(index)
        self.timeline.note(f"n{index} up")

    async def kill_valkey(self) -> None:
        self.timeline.note("SIGKILL Valkey")
        await asyncio.to_thread(self.engines.valkey.kill)

    async def start_valkey(self) -> None:
        await asyncio.to_thread(self.engines.valkey.start)
        self.timeline.note("Valkey up (empty)")

    async def stop_postgres(self) -> None:
        self.ledger.outages.append((time.monotonic(), None))
        self.timeline.note("stopping PostgreSQL")
        await asyncio.to_thread(self.engines.postgres.stop)
        self.timeline.note("PostgreSQL down")

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.engines.postgres.start)
        down, _ = self.ledger.outages[-1]
        self.ledger.outages[-1] = (down, time.monotonic())
        self.timeline.note("PostgreSQL up")


Scenario = Callable[[Chaos], Awaitable[None]]


async def no_faults(chaos: Chaos) -> None:
    """The harness alone: balancers, clients and probes must pass with nothing failing."""
    await chaos.pause(8)


async def clients_move(chaos: Chaos) -> None:
    """No fault in the server: a writer moves from node to node, so its node unloads the room
    and loads it again while the others type."""
    await chaos.pause(3)
    for _ in range(3):
        await chaos.move("w0", 1)
        await chaos.pause(1.5)
        await chaos.move("w0", 0)
        await chaos.pause(1.5)


async def kill_restart_kill(chaos: Chaos) -> None:
    await chaos.pause(4)
    await chaos.kill(0)
    await chaos.pause(3)
    await chaos.restart(0)
    await chaos.pause(3)
    await chaos.kill_after_ack(1)
    await chaos.pause(3)
    await chaos.restart(1)
    await chaos.pause(3)


async def valkey_restart_then_kill(chaos: Chaos) -> None:
    await chaos.pause(4)
    await chaos.kill_valkey()
    await chaos.pause(1.5)
    await chaos.start_valkey()
    await chaos.pause(3)
    await chaos.kill_after_ack(2)
    await chaos.pause(3)
    await chaos.restart(2)
    await chaos.pause(3)


async def postgres_restart_with_kill(chaos: Chaos) -> None:
    await chaos.pause(4)
    await chaos.stop_postgres()
    await chaos.pause(0.5)
    await chaos.kill_after_ack(1)  # while PostgreSQL is down: n1's edits are only in memory
    await chaos.pause(1)
    await chaos.start_postgres()
    await chaos.pause(3)
    await chaos.restart(1)
    await chaos.pause(4)


async def two_kills(chaos: Chaos) -> None:
    await chaos.pause(4)
    await chaos.kill_after_ack(0)
    await chaos.pause(0.3)
    await chaos.kill(1)
    await chaos.pause(4)
    await asyncio.gather(chaos.restart(0), chaos.restart(1))
    await chaos.pause(4)


SCENARIOS = [
    pytest.param(no_faults, id="no-faults"),
    pytest.param(clients_move, id="clients-move"),
    pytest.param(kill_restart_kill, id="kill-restart-kill"),
    pytest.param(valkey_restart_then_kill, id="valkey-restart-then-kill"),
    pytest.param(postgres_restart_with_kill, id="postgres-restart-with-kill"),
    pytest.param(two_kills, id="two-kills"),
]


@contextlib.asynccontextmanager
async def running(
    own: OwnEngines, js_dir: Path, tmp_path: Path, http: aiohttp.ClientSession
) -> AsyncIterator[tuple[Chaos, Prober]]:
    """Three nodes, a dojo, the clients (synced, not typing yet) and a prober; everything is
    stopped at the end, whatever happens."""
    async with contextlib.AsyncExitStack() as stack:
        cluster = Cluster(own, tmp_path, stack.enter_context(contextlib.ExitStack()))
        await asyncio.gather(*(cluster.start(i) for i in range(NODES)))
        s = await _setup(http, cluster.server(0))
        session_id = s["dojo"]["sessionId"]
        timeline = Timeline()
        ledger = Ledger(timeline)
        chaos = Chaos(
            cluster, own, timeline, ledger, {}, f"/v1/dojos/sessions/{session_id}", s["guest"],
            js_dir, http,
        )  # fmt: skip
        for name, preferred in {**WRITERS, **LISTENERS}.items():
            token = s["host"] if name in WRITERS else s["guest"]
            chaos.clients[name] = await start_client(
                chaos, stack, name, preferred, token, report=name in LISTENERS
            )
        await asyncio.gather(*(c.wait_synced() for c in chaos.clients.values()))
        ledger.writer_node = lambda writer: chaos.clients[writer].node
        reader = await YjsReader.start(js_dir)
        stack.push_async_callback(reader.close)
        prober = Prober(own.database_url, UUID(session_id), reader, ledger)
        stack.push_async_callback(prober.close)
        yield chaos, prober


async def start_client(
    chaos: Chaos,
    stack: contextlib.AsyncExitStack,
    name: str,
    preferred: int,
    token: str,
    *,
    report: bool,
) -> ChaosClient:
    """A stock client behind a balancer of its own; both stopped with ``stack``."""
    balancer = Balancer(chaos.cluster.backends, preferred)
    await balancer.start()
    stack.push_async_callback(balancer.close)
    client = await ChaosClient.start(
        chaos.js_dir, name, balancer, chaos.ledger, chaos.session_path, token, report=report
    )
    stack.push_async_callback(client.stop)
    return client


async def converge(chaos: Chaos, expected: set[str]) -> tuple[str | None, str]:
    """Wait until every client holds the same text with exactly the ``expected`` markers.

    Returns the text, or None and what the clients hold instead.
    """
    clients = list(chaos.clients.values())
    deadline = time.monotonic() + CONVERGE_WAIT
    while True:
        texts = {c.name: (await c.request("get"))["text"] for c in clients}
        if len(set(texts.values())) == 1 and markers(texts[clients[0].name]) == expected:
            return texts[clients[0].name], ""
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    lines = [
        f"the clients did not converge within {CONVERGE_WAIT} s on the {len(expected)} markers:"
    ]
    for c in clients:
        held = markers(texts[c.name])
        lines.append(
            f"  {c.report()}\n    missing {len(expected - held)}: {sample(expected - held)}; "
            f"unexpected {len(held - expected)}: {sample(held - expected)}"
        )
    return None, "\n".join(lines)


def check_stored(
    what: str, got: tuple[float, StoredRows, YjsReading, str] | None, final: str, ledger: Ledger
) -> str:
    """ "" if PostgreSQL holds exactly ``final`` (read alike by Yjs and pycrdt), else why not."""
    if got is None:
        return f"{what}: PostgreSQL unreachable"
    _, rows, yjs, py = got
    problems = []
    if yjs.text != final:
        held, want = markers(yjs.text), markers(final)
        problems.append(
            f"Yjs reads another text: missing {len(want - held)}: {sample(want - held)}; "
            f"unexpected {len(held - want)}: {sample(held - want)}"
        )
    if py != yjs.text:
        problems.append(f"pycrdt reads another text than Yjs ({len(py)} vs {len(yjs.text)} chars)")
    if yjs.pending:
        problems.append(f"Yjs holds updates back for a missing dependency ({ledger.pending(yjs)})")
    if not problems:
        return ""
    return f"{what} ({rows.describe()}): " + "; ".join(problems)


async def wait_unloaded(chaos: Chaos) -> str:
    """Wait until no live node holds a room; "" or what they still hold."""
    deadline = time.monotonic() + WAIT
    while True:
        active = await chaos.cluster.rooms_active(chaos.http)
        if not any(active.values()):
            return ""
        if time.monotonic() > deadline:
            return f"rooms still loaded {WAIT} s after the clients left: {active}"
        await asyncio.sleep(0.1)


async def reload(chaos: Chaos, final: str, expected: set[str]) -> str:
    """A fresh stock client loads the room from PostgreSQL; "" or what it got instead."""
    async with contextlib.AsyncExitStack() as stack:
        fresh = await start_client(
            chaos, stack, "fresh", chaos.cluster.live()[0], chaos.guest_token, report=False
        )
        await fresh.wait_synced()
        text: str = (await fresh.request("get"))["text"]
    if text == final and markers(text) == expected:
        return ""
    held = markers(text)
    return (
        f"a fresh client loaded another text: missing {len(expected - held)}: "
        f"{sample(expected - held)}; unexpected {len(held - expected)}: {sample(held - expected)}"
    )


async def run_scenario(chaos: Chaos, prober: Prober, scenario: Scenario) -> None:
    """Type through the scenario's faults while probing, then check the end state."""
    writers = [c for c in chaos.clients.values() if c.name in WRITERS]
    timeline = chaos.timeline
    timeline.t0 = time.monotonic()
    await asyncio.gather(*(w.request("type") for w in writers))
    timeline.note("writers typing")
    stop_probing = asyncio.Event()
    probing = asyncio.create_task(prober.run(stop_probing))
    problems: list[str] = []
    try:
        await scenario(chaos)
        typed = {w.name: (await w.request("stop"))["typed"] for w in writers}
        typing_time = time.monotonic() - timeline.t0
        timeline.note(f"writers stopped: {typed} markers typed, {len(chaos.ledger.deleting)} "
                      "deleted")  # fmt: skip
        expected = {f"<{n}:{i}>" for n, count in typed.items() for i in range(count)}
        expected -= set(chaos.ledger.deleting)
        final, problem = await converge(chaos, expected)
        timeline.note("clients converged" if final is not None else "clients did not converge")
        problems.append(problem)
    finally:
        stop_probing.set()
        await probing
    last_stored: set[str] | None = None
    if final is not None:
        # Everything was acknowledged by now; give the server its deadline, then look.
        await asyncio.sleep(DEADLINE + 0.1)
        got = await prober.read()
        last_stored = markers(got[2].text) if got else None
        problems.append(check_stored("final probe", got, final, chaos.ledger))
        timeline.note("final probe")
    for client in chaos.clients.values():
        await client.stop()
        if client.terminal is not None:
            problems.append(f"{client.name} was closed for good: {client.terminal}")
    problems.append(await wait_unloaded(chaos))
    timeline.note("rooms unloaded")
    got = await prober.read()
    last_stored = markers(got[2].text) if got else last_stored
    if final is not None:
        problems.append(check_stored("after unload", got, final, chaos.ledger))
        problems.append(await reload(chaos, final, expected))
        timeline.note("reloaded by a fresh client")
    problems.insert(0, prober.report(timeline, last_stored))
    ran = len(prober.probes)
    if ran < typing_time / PROBE_EVERY / 3:
        problems.append(f"only {ran} probes ran ({prober.skipped} skipped) in {typing_time:.1f} s")
    problems = [p for p in problems if p]
    summary = (
        f"timeline:\n{timeline.format()}\n{ran} probes, {prober.skipped} skipped; "
        f"{len(chaos.ledger.acked)} markers acknowledged, {len(chaos.ledger.gone)} deletions"
    )
    print(summary)
    assert not problems, "\n".join([*problems, summary])


@pytest.fixture
def own(tmp_path: Path) -> Iterator[OwnEngines]:
    """A PostgreSQL and a Valkey for this test alone (it stops and kills them)."""
    with own_engines(tmp_path / "engines") as engines:
        yield engines


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_acknowledged_edits_survive_chaos(
    scenario: Scenario, own: OwnEngines, js_dir: Path, tmp_path: Path
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        running(own, js_dir, tmp_path, http) as (chaos, prober),
    ):
        await run_scenario(chaos, prober, scenario)
