"""A recording across two real ``pocdojo serve`` nodes, one of them killed with SIGKILL while
its participant's audio is being written: the mix is made without that participant once the
bounded wait passes, and with them once the node runs again and uploads what it wrote."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Engines
from tests.realtime.recorder_peers import Tone, answered, decode, peaks, speaker
from tests.realtime.test_multinode import _env, _setup, api, base, on
from tests.servers import Server, serving
from tests.yclient import next_event

pytestmark = pytest.mark.timeout(300)


@contextlib.contextmanager
def _node(engines: Engines, tmp_path: Path, tag: str, **variables: str) -> Iterator[Server]:
    env = {**_env(engines), "OBJECT_STORE_URL": (tmp_path / "objects").as_uri(), **variables}
    with serving(tmp_path / tag, env, tmp_path / f"{tag}-logs-{time.monotonic_ns()}") as node:
        node.wait_until_healthy()
        yield node


async def _mix(http: aiohttp.ClientSession, node: Server, path: str, token: str, n: int) -> Any:
    """The recording once mixed from ``n`` participants."""
    deadline = time.monotonic() + 90
    while True:
        body = await api(http, node, "GET", path, token=token)
        assert body["status"] != "failed", body
        if body["status"] == "ready" and len(body["participants"]) == n:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)


async def test_a_node_killed_mid_recording_keeps_what_it_wrote(
    engines: Engines, tmp_path: Path
) -> None:
    with _node(engines, tmp_path, "a", RECORDING_UPLOAD_WAIT="3", LOG_LEVEL="INFO") as a:
        async with aiohttp.ClientSession() as http:
            s = await _setup(http, a)
            events = s["dojo"]["eventsUrl"]
            host_ws = await http.ws_connect(on(a, events) + f"?token={s['host']}")
            await next_event(host_ws, "welcome")
            with _node(engines, tmp_path, "b") as b:
                guest_ws = await http.ws_connect(on(b, events) + f"?token={s['guest']}")
                await next_event(guest_ws, "welcome")
                session = f"/v1/dojos/sessions/{s['dojo']['sessionId']}"
                started = await api(
                    http, a, "POST", f"{session}/recording", {"action": "start"}, s["token"]
                )
                t0 = time.monotonic()
                tones = [Tone(440.0), Tone(1000.0)]
                pcs = []
                for ws, tone in zip((host_ws, guest_ws), tones, strict=True):
                    pc = await speaker(ws, tone)
                    await answered(ws, pc)
                    pcs.append(pc)
                await asyncio.sleep(3.0)
                b.proc.kill()  # SIGKILL while the guest's audio is being written
                b.proc.wait()
                sent = max(t.last or 0 for t in tones) - t0
                for pc in pcs:
                    await pc.close()
                await api(http, a, "POST", f"{session}/recording", {"action": "stop"}, s["token"])
            path = f"{session}/recordings/{started['recordingId']}"
            first = await _mix(http, a, path, s["token"], 1)
            assert abs(first["duration"] - sent) <= 0.1 * sent

            with _node(engines, tmp_path, "b"):  # runs again, on the same data directory
                both = await _mix(http, a, path, s["token"], 2)
            assert abs(both["duration"] - sent) <= 0.1 * sent
            samples, rate = decode(await _fetch(http, a, both["oggUrl"]))
            assert min(peaks(samples, rate, [440.0, 1000.0])) > 0.1
            await host_ws.close()


async def _fetch(http: aiohttp.ClientSession, node: Server, url: str) -> bytes:
    """A signed link's bytes, from ``node`` (links name the configured public URL)."""
    path = "/" + url.split("/", 3)[3]
    async with http.get(base(node) + path) as resp:
        assert resp.status == 200
        return await resp.read()
