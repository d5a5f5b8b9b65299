"""A small y-websocket client in Python (pycrdt + aiohttp) for driving the document socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
from pycrdt import (
    Awareness,
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)


class YClient:
    """Keeps a local ``Doc`` in sync with a room, as y-websocket's provider does."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, autosend: bool = True) -> None:
        self.ws = ws
        self.autosend = autosend
        self.outgoing: list[bytes] = []
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("code", type=Text)
        self.awareness = Awareness(self.doc)
        self.remote_awareness: dict[int, Any] = {}
        self.synced = asyncio.Event()
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._subscription = self.doc.observe(self._on_local_change)
        self._applying_remote = False

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, url: str, *, autosend: bool = True
    ) -> YClient:
        """Connect; with ``autosend`` off, local updates wait in ``outgoing`` for ``flush``."""
        ws = await session.ws_connect(url, max_msg_size=0)
        client = cls(ws, autosend=autosend)
        client._reader = asyncio.create_task(client._read())
        await client.ws.send_bytes(create_sync_message(client.doc))
        return client

    async def reconnect(self, session: aiohttp.ClientSession, url: str) -> None:
        """Connect again (e.g. to another node) keeping the local document; both sides then
        exchange what the other lacks, as y-websocket's provider does on reconnect."""
        if not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.ws = await session.ws_connect(url, max_msg_size=0)
        self.close_code = None
        self.synced.clear()
        self._reader = asyncio.create_task(self._read())
        await self.ws.send_bytes(create_sync_message(self.doc))

    def _on_local_change(self, event: Any) -> None:
        self._changed.set()
        if self._applying_remote or self.ws.closed:
            return  # sent with the next sync instead
        if not self.autosend:
            self.outgoing.append(create_update_message(event.update))
            return
        asyncio.get_running_loop().create_task(self._send(create_update_message(event.update)))

    async def flush(self) -> None:
        """Send the local updates held back (in order, waiting for the socket to drain)."""
        pending, self.outgoing = self.outgoing, []
        if self.ws.closed:
            raise AssertionError(f"socket closed ({self.ws.close_code}) with updates unsent")
        for message in pending:
            await self.ws.send_bytes(message)

    async def _send(self, message: bytes) -> None:
        # A socket that dies mid-send loses nothing: the edit is in the local document and
        # goes out with the next sync.
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(message)

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            data: bytes = msg.data
            if data[0] == YMessageType.SYNC:
                self._applying_remote = True
                try:
                    reply = handle_sync_message(data[1:], self.doc)
                finally:
                    self._applying_remote = False
                if reply is not None:
                    await self.ws.send_bytes(reply)
                if data[1] == YSyncMessageType.SYNC_STEP2:
                    self.synced.set()
            elif data[0] == YMessageType.AWARENESS:
                payload = read_message(data[1:])
                self.awareness.apply_awareness_update(payload, "remote")
                self.remote_awareness = dict(self.awareness.states)
            self._changed.set()
        self.close_code = self.ws.close_code
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checking after every message."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                if predicate():
                    return
                if self.close_code is not None:
                    raise AssertionError(f"socket closed ({self.close_code}) while waiting")
                await self._changed.wait()

    async def wait_closed(self, within: float = 10.0) -> int | None:
        await self.wait_for(lambda: self.close_code is not None or self.ws.closed, within)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        return self.ws.close_code

    def set_awareness(self, state: dict[str, Any]) -> None:
        self.awareness.set_local_state(state)
        update = self.awareness.encode_awareness_update([self.awareness.client_id])
        asyncio.get_running_loop().create_task(self.ws.send_bytes(create_awareness_message(update)))

    @property
    def code(self) -> str:
        return str(self.text)

    async def close(self) -> None:
        self.doc.unobserve(self._subscription)
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def edit_reaches_others(
    session: aiohttp.ClientSession, writer: YClient, other: YClient, url: str, line: str
) -> bool:
    """Whether ``line``, appended by ``writer``, reaches the room. ``other`` appends a line
    after it, and once ``writer`` has received that one, a client newly synced from ``url``
    (and ``other``) show whether ``line`` came too."""
    writer.text += line
    mark = f"# {uuid.uuid4().hex}\n"
    other.text += mark
    await writer.wait_for(lambda: mark in writer.code)
    late = await YClient.connect(session, url)
    await late.wait_for(lambda: mark in late.code)
    reached = line in late.code or line in other.code
    await late.close()
    return reached


async def events(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    """Open an events socket."""
    return await session.ws_connect(url)


async def next_event(
    ws: aiohttp.ClientWebSocketResponse, kind: str, within: float = 10.0
) -> dict[str, Any]:
    """The next JSON event of ``kind`` (skipping others)."""
    async with asyncio.timeout(within):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended: {msg.type} {ws.close_code}")
            event: dict[str, Any] = json.loads(msg.data)
            if event.get("type") == kind:
                return event


def typed(*pieces: str, client_id: int | None = None) -> list[bytes]:
    """The updates of one Yjs client appending ``pieces`` to ``code``, one transaction each."""
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for piece in pieces:
        text += piece
    return updates
