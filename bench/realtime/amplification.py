"""Amplification benchmark: how much memory one socket can make the server hold for it.

A participant asks for the whole document (sync step 1 with an empty state vector, 10 bytes)
``--requests`` times on a socket it never reads, in a room whose document holds ``--doc-kb``
kilobytes. Answered one by one, each request queues a copy of the document for that socket.
Reported: the server's RSS before, at its peak during the attack (sampled every 50 ms), and
10 s after the socket closed; and how many answers the socket got once it read them.

Run from the repository root (no JS packages needed)::

    .venv/bin/python bench/realtime/amplification.py
    .venv/bin/python bench/realtime/amplification.py --requests 300 --doc-kb 1000

Every process it starts is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
from _targets import create_dojos, engines, log, pocdojo_server, revision
from pycrdt import (
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_sync_message,
    create_update_message,
)

MIB = 1024 * 1024
_STEP2 = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=300, help="sync requests sent")
    parser.add_argument("--doc-kb", type=int, default=1000, help="document size (KB)")
    parser.add_argument("--data-dir", type=Path, default=Path(".bench/realtime"))
    return parser.parse_args()


async def _fill(url: str, kilobytes: int) -> None:
    """Write ``kilobytes`` of code into the room, in updates under 1 MiB."""
    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for _ in range(kilobytes // 200):
        text += "x" * 200_000
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for update in updates:
            await ws.send_bytes(create_update_message(update))
        await ws.send_bytes(create_sync_message(Doc()))
        while True:  # the answer to our own sync request comes after our updates
            msg = await ws.receive()
            binary = msg.type == aiohttp.WSMsgType.BINARY
            if binary and msg.data[:2] == _STEP2 and len(msg.data) > kilobytes * 1000:
                return


async def attack(port: int, session: str, token: str, host: str, args: Any, server: Any) -> None:
    """Fill the room as its host, then ask again and again as the guest without reading."""
    url = f"ws://127.0.0.1:{port}/v1/dojos/sessions/{session}/doc?token="
    await _fill(url + host, args.doc_kb)
    before = server.measured.sample().rss
    peak = before
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url + token, max_msg_size=0)
        ask = create_sync_message(Doc())
        for _ in range(args.requests):
            await ws.send_bytes(ask)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            peak = max(peak, server.measured.sample().rss)
            await asyncio.sleep(0.05)
        answers = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while answers < args.requests:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        break
                    answers += msg.data[:2] == _STEP2
        await ws.close()
    await asyncio.sleep(10)
    after = server.measured.sample().rss
    print(f"pocdojo {revision()}: {args.requests} sync requests, document {args.doc_kb} KB")
    print(
        f"server RSS before {before / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB "
        f"(+{(peak - before) / MIB:.0f}), 10 s after {after / MIB:.0f} MiB "
        f"(+{(after - before) / MIB:.0f}); answers received {answers}"
    )


def main() -> int:
    args = parse_args()
    with (
        engines(args.data_dir / "engines") as urls,
        pocdojo_server(urls, args.data_dir / "pocdojo" / "amplification") as server,
    ):
        dojos = asyncio.run(create_dojos(server.port, 1, 2))
        log("attacking")
        session, (host, guest) = dojos.session_ids[0], dojos.tokens[0]
        asyncio.run(attack(server.port, session, guest, host, args, server))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
