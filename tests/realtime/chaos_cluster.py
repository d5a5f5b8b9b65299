"""The chaos test's moving parts: three nodes, stock clients behind their balancers, and the
faults a scenario drives (tests/realtime/test_chaos.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.balancer import Backends, Balancer
from tests.conftest import TEST_JWT_SECRET
from tests.helpers import end_process
from tests.realtime.chaos_ledger import (
    DELETE_EVERY,
    IDLE_UNLOAD,
    NODES,
    PERSIST_INTERVAL,
    RATE,
    WAIT,
    Ack,
    Ledger,
    Timeline,
)
from tests.restartable_engines import OwnEngines
from tests.servers import Server, cli_env, serving

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
