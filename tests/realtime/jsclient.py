"""Stock JavaScript Yjs clients (yjs + y-websocket) in Node processes, driven from the tests.

A script in ``tests/js`` writes one JSON object a line on stdout (its events) and may read
commands on stdin. ``NodeScript`` runs one such process and keeps its events; ``JsClient`` is
``tests/js/yclient.js``: a ``Y.Doc`` connected by a stock ``WebsocketProvider``, which reports
every socket close (``closed``, with its code) and when it gives up reconnecting
(``terminal``). The ``node`` fixture (tests/realtime/conftest.py) starts them and ends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, Self

from tests.dojo_helpers import Dojo
from tests.helpers import end_process
from tests.yclient import YClient

DEADLINE = 15.0  # seconds to wait for a condition that should hold within milliseconds


class NodeScript:
    """One Node process of ``tests/js`` speaking JSON lines; its events are kept in order."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.closes: list[dict[str, Any]] = []  # every socket close: {"code", "reason", …}
        self.terminal: dict[str, Any] | None = None  # the provider gave up reconnecting
        self.errors: list[str] = []
        self._changed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._read_events()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def spawn(cls, js_dir: Path, name: str, script: str, *args: str) -> Self:
        """Start ``node <js_dir>/<script> <args…>`` in ``js_dir`` (its node_modules)."""
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(js_dir / script),
            *args,
            cwd=js_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        return cls(name, proc)

    def on_event(self, event: dict[str, Any]) -> None:
        """Keep what an event says; subclasses add their own kinds."""
        kind = event["event"]
        if kind == "closed":
            self.closes.append(event)
        elif kind == "terminal":
            self.terminal = event
        elif kind == "error":
            self.errors.append(event["message"])

    async def _read_events(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            event: dict[str, Any] = json.loads(raw)
            self.events.append(event)
            self.on_event(event)
            self._changed.set()
        self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace").rstrip())

    @property
    def running(self) -> bool:
        return self.proc.returncode is None and not self._tasks[0].done()

    @property
    def close_codes(self) -> list[int | None]:
        """The codes of every socket close so far, oldest first (None: closed locally)."""
        return [c["code"] for c in self.closes]

    async def write_line(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def wait_for(
        self, predicate: Callable[[], bool], what: str, within: float = DEADLINE
    ) -> None:
        """Wait until ``predicate()`` holds, re-checking after every event."""
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    if not self.running and not predicate():
                        raise AssertionError(f"{self.name} exited")
                    self._changed.clear()
                    await self._changed.wait()
        except (TimeoutError, AssertionError) as exc:
            raise AssertionError(f"{self.name}: {what} did not happen\n{self.report()}") from exc

    def report(self) -> str:
        tail = "\n".join(json.dumps(e, ensure_ascii=False)[:300] for e in self.events[-8:])
        return (
            f"returncode={self.proc.returncode} closes={self.close_codes} "
            f"terminal={self.terminal}\nerrors={self.errors}\nstderr={self.stderr[-15:]}\n"
            f"last events:\n{tail}"
        )

    def kill(self) -> None:
        """Die at once, without a close handshake (a crashed tab, a killed laptop)."""
        if self.proc.returncode is None:
            self.proc.kill()

    async def stop(self) -> None:
        """End the process: EOF on stdin makes it exit; killed if it lingers."""
        await end_process(self.proc)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)


class JsClient(NodeScript):
    """``tests/js/yclient.js``: one ``Y.Doc`` connected by a stock ``WebsocketProvider``."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.text = ""
        self.client_id = -1  # the Y.Doc clientID, once the script reports ready
        self.status = "new"
        self.synced = False
        self.states: dict[int, Any] = {}
        self._next_id = 0
        super().__init__(name, proc)

    @classmethod
    async def start(cls, js_dir: Path, name: str, server_url: str, token: str) -> JsClient:
        """Start a client of the document socket under ``server_url`` (``…/sessions/{id}``)."""
        config = {"serverUrl": server_url, "room": "doc", "token": token}
        return await cls.spawn(js_dir, name, "yclient.js", json.dumps(config))

    def on_event(self, event: dict[str, Any]) -> None:
        super().on_event(event)
        kind = event["event"]
        if kind in ("text", "done"):
            self.text = event["text"]
        if kind == "ready":
            self.client_id = event["clientId"]
        elif kind == "status":
            self.status = event["status"]
        elif kind == "synced":
            self.synced = event["synced"]
        elif kind == "awareness":
            self.states = {int(k): v for k, v in event["states"].items()}

    def others(self) -> dict[int, Any]:
        """Awareness states of everyone else that carry something (the server's is ``{}``)."""
        return {k: v for k, v in self.states.items() if k != self.client_id and v}

    async def send(self, cmd: str, **fields: Any) -> int:
        """Send a command without waiting for its answer; returns its id."""
        self._next_id += 1
        await self.write_line(json.dumps({"cmd": cmd, "id": self._next_id, **fields}))
        return self._next_id

    async def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for its answer (failing if the command failed)."""
        request_id = await self.send(cmd, **fields)
        answer: dict[str, Any] = {}

        def answered() -> bool:
            for event in reversed(self.events):
                if event["event"] == "done" and event["id"] == request_id:
                    answer.update(event)
                    return True
            return False

        await self.wait_for(answered, f"answer to {cmd}")
        assert answer["ok"], f"{self.name}: {cmd} failed: {answer.get('error')}"
        return answer

    async def get(self) -> str:
        text: str = (await self.request("get"))["text"]
        return text

    def report(self) -> str:
        return (
            f"status={self.status} synced={self.synced} text={self.text[:200]!r}"
            f"{'…' if len(self.text) > 200 else ''}\n{super().report()}"
        )


class JsFactory(Protocol):
    """The ``node`` fixture: start a ``JsClient`` (ready for commands) on ``dojo``'s socket,
    or on ``server_url`` (``ws://…/v1/dojos/sessions/{id}``) when given."""

    async def __call__(
        self, name: str, dojo: Dojo, token: str, *, server_url: str | None = None
    ) -> JsClient: ...


def server_url_of(dojo: Dojo) -> str:
    """The URL a ``WebsocketProvider`` is given: the doc socket's, less its room name."""
    return dojo.doc_url.removesuffix("/doc")


async def eventually(
    predicate: Callable[[], bool],
    what: str,
    within: float = DEADLINE,
    report: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``predicate`` until it holds; fail with ``report()`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s\n{report()}")
        await asyncio.sleep(0.01)


def report_of(*clients: NodeScript | YClient) -> Callable[[], str]:
    """A report of every client's state, for a failed wait."""

    def report() -> str:
        parts = []
        for c in clients:
            if isinstance(c, NodeScript):
                parts.append(f"[{c.name}] {c.report()}")
            else:
                code = c.code
                shown = code[:200] + ("…" if len(code) > 200 else "")
                parts.append(
                    f"[python] close={c.close_code} code={shown!r} awareness={c.remote_awareness}"
                )
        return "\n".join(parts)

    return report
