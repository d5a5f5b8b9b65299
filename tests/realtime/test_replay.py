"""The automerge-paper editing trace replayed through a room: one writer, two listeners."""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.dojo_helpers import create_dojo, join
from tests.helpers import register, signup
from tests.yclient import YClient

TRACE = Path(__file__).resolve().parents[1] / "data" / "automerge-paper.json.gz"

pytestmark = pytest.mark.timeout(600)

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


def load_trace() -> dict[str, Any]:
    if not TRACE.exists():
        pytest.skip(f"editing trace not found at {TRACE}")
    with gzip.open(TRACE, "rt") as fh:
        trace: dict[str, Any] = json.load(fh)
    return trace


async def test_the_paper_trace_replays_to_its_end_content(make_client: MakeClient) -> None:
    trace = load_trace()
    # One writer sends ~260,000 updates as fast as it can, past the per-socket rate: the
    # server slows it down and merges what waited, and drops nothing.
    client = await make_client()
    host = await signup(client)
    dojo = await create_dojo(client, host, initialCode=trace["startContent"])
    tokens = [await join(client, dojo, await register(client, host)) for _ in range(2)]
    async with aiohttp.ClientSession() as http:
        listeners = [await YClient.connect(http, dojo.doc(t)) for t in tokens]
        writer = await YClient.connect(http, dojo.doc(dojo.host_token), autosend=False)
        await writer.synced.wait()
        text = writer.text
        # The trace is ASCII, so its code-point positions are also pycrdt's byte offsets.
        for i, txn in enumerate(trace["txns"]):
            with writer.doc.transaction():
                for pos, delete, insert in txn["patches"]:
                    if delete:
                        del text[pos : pos + delete]
                    if insert:
                        text.insert(pos, insert)
            if i % 1000 == 999:
                await writer.flush()
        await writer.flush()
        end = trace["endContent"]
        assert writer.code == end
        for listener in listeners:
            await listener.wait_for(functools.partial(_holds, listener, end), within=300)
        for c in (writer, *listeners):
            await c.close()


def _holds(client: YClient, text: str) -> bool:
    return client.code == text
