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
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from uuid import UUID

import aiohttp
import pytest

from tests.balancer import Balancer
from tests.realtime.chaos_cluster import Chaos, ChaosClient, Cluster
from tests.realtime.chaos_ledger import (
    CONVERGE_WAIT,
    DEADLINE,
    LISTENERS,
    NODES,
    PROBE_EVERY,
    WAIT,
    WRITERS,
    Ledger,
    Prober,
    Timeline,
    markers,
    sample,
)
from tests.realtime.test_multinode import _setup
from tests.restartable_engines import OwnEngines, own_engines
from tests.ystore import StoredRows, YjsReader, YjsReading

pytestmark = pytest.mark.timeout(240)

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
def own() -> Iterator[OwnEngines]:
    """A PostgreSQL and a Valkey for this test alone (it stops and kills them).

    Their data lives outside pytest's temporary folders: PostgreSQL runs as another user, and
    a pytest session starting meanwhile makes its root folder private again, which would lock
    that user out of a server started later in the run.
    """
    with (
        tempfile.TemporaryDirectory(prefix="pocdojo-chaos-") as data_dir,
        own_engines(Path(data_dir)) as engines,
    ):
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
