"""A real editing trace, typed by a stock client as fast as it can, through the default limits.

The writer (tests/js/replay.mjs: yjs + y-websocket's ``WebsocketProvider`` in Node) replays the
automerge-paper trace (tests/data/README.md), one transaction per trace transaction: about
260,000 update messages, far over ``WS_UPDATES_PER_SECOND`` (200, burst 400). The server must
slow it down by backpressure, never close it, and two stock listeners must end with exactly the
trace's ``endContent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from aiohttp.test_utils import TestClient

from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, register
from tests.realtime.jsclient import NodeScript, eventually, report_of, server_url_of

Client = TestClient[Any, Any]

TRACE = Path(__file__).resolve().parents[1] / "data" / "automerge-paper.json.gz"
REPLAY_WITHIN = 270.0  # seconds from the first transaction to both listeners holding the end


class ReplayClient(NodeScript):
    """``tests/js/replay.mjs`` in ``write`` or ``listen`` mode."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.ready = False
        self.applied: dict[str, Any] | None = None  # the writer's "applied" event, and when
        self.flushed_at: float | None = None
        self.done_at: float | None = None
        super().__init__(name, proc)

    @classmethod
    async def open(cls, js_dir: Path, mode: str, name: str, dojo: Dojo, token: str) -> ReplayClient:
        config = {
            "serverUrl": server_url_of(dojo),
            "room": "doc",
            "token": token,
            "trace": str(TRACE),
        }
        return await cls.spawn(js_dir, name, "replay.mjs", mode, json.dumps(config))

    def on_event(self, event: dict[str, Any]) -> None:
        super().on_event(event)
        kind = event["event"]
        if kind == "ready":
            self.ready = True
        elif kind == "applied":
            self.applied = {**event, "at": time.monotonic()}
        elif kind == "flushed":
            self.flushed_at = time.monotonic()
        elif kind == "done":
            self.done_at = time.monotonic()


def _end_content() -> str:
    with gzip.open(TRACE, "rt") as fh:
        trace: dict[str, Any] = json.load(fh)
    assert trace["startContent"] == ""
    end: str = trace["endContent"]
    return end


@pytest.mark.timeout(300)
async def test_a_stock_client_replays_the_paper_trace_through_the_default_limits(
    client: Client, admin: Account, js_dir: Path
) -> None:
    end = _end_content()
    dojo = await create_dojo(client, admin, initialCode="")
    tokens = [await join(client, dojo, await register(client, admin)) for _ in range(2)]
    async with contextlib.AsyncExitStack() as stack:

        async def start(mode: str, name: str, token: str) -> ReplayClient:
            script = await ReplayClient.open(js_dir, mode, name, dojo, token)
            stack.push_async_callback(script.stop)
            return script

        listeners = [await start("listen", f"listener{i}", t) for i, t in enumerate(tokens)]
        writer = await start("write", "writer", dojo.host_token)
        report = report_of(writer, *listeners)
        await eventually(
            lambda: all(c.ready for c in (writer, *listeners)), "sync", within=30, report=report
        )

        began = time.monotonic()
        await writer.write_line("go")
        await eventually(
            lambda: all(c.done_at for c in listeners) or bool(writer.closes or writer.errors),
            "both listeners reaching the trace's endContent",
            within=REPLAY_WITHIN,
            report=report,
        )
        timings = {
            "applied": writer.applied["at"] - began if writer.applied else None,
            "flushed": writer.flushed_at - began if writer.flushed_at else None,
            "listeners done": max((c.done_at or began) - began for c in listeners),
        }
        print(f"\ntrace replay through the default limits, seconds after the start: {timings}")
        assert writer.close_codes == [], f"the writer was closed\n{report()}"
        assert writer.errors == []
        assert writer.applied is not None
        assert writer.applied["ok"], "the writer's own text is not the trace's endContent"
        assert all(c.done_at for c in listeners), report()
        assert all(c.close_codes == [] for c in listeners), report()
        assert client.app is not None
        assert client.app[rooms_key].rooms[UUID(dojo.session_id)].code() == end
