"""The chaos test's record: what listeners acknowledged, and probes of PostgreSQL read by
stock Yjs and pycrdt against it (tests/realtime/test_chaos.py)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from tests.ystore import StoredRows, YjsReader, YjsReading, pycrdt_text, read_rows

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
        except (
            OSError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            # A read cut short by the timeout while PostgreSQL restarts can leave the
            # connection mid-operation; it is dropped and a new one made next time.
            asyncpg.InternalClientError,
            TimeoutError,
        ):
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
