"""The load generator's clients: raw y-websocket (and Hocuspocus) clients on plain asyncio.

One worker process holds many clients. Each client is an ``asyncio.Protocol`` that speaks
just enough WebSocket (RFC 6455: the upgrade, unfragmented binary frames, ping/pong, close)
and just enough of the y-websocket protocol to be a well-behaved peer:

* on open it sends sync step 1 with an empty state vector and answers the server's sync
  step 1 with an empty sync step 2, like a stock provider whose document is still empty;
* it counts itself connected once the server's sync step 2 (the room's state) has arrived;
* its edits are hand-encoded Yjs v1 updates: each inserts one ASCII marker into the root
  ``Y.Text`` named ``code``: the first at the start of the text, each later one right after
  the client's previous insert (origin = its own last item). These are exactly the updates a
  Yjs client typing at the end of its own line would send, so every server applies, stores
  and re-encodes them as real edits.

A marker reads ``<sender.seq.t>``: the sender's global index, its edit counter, and the send
time in microseconds on ``CLOCK_MONOTONIC`` (shared by every process of the machine) since
the run's epoch. A receiver finds markers in every sync-update message it gets (a server
that re-encodes the update still carries the string verbatim), drops its own echoes (the
reference server and Hocuspocus send an update back to its sender too) and duplicates (a
resent whole state), and records ``receipt - send`` for edits sent in the measurement window.

With ``hocuspocus`` framing every message is prefixed with the document name (a varString),
the client first sends an auth message (any token: the bench server has no auth hook) and
starts syncing once the server answers "authenticated"; Hocuspocus acknowledges each update
with a sync-status message, which the client ignores.

Frames are masked with the all-zero key (legal, and free: the payload is sent unchanged), so
the generator spends its CPU on the protocol rather than on masking.

With several ``ports`` (one per server node) the clients of a room are spread over the nodes
round robin (client c of a room on node c mod N), and receipts at a client on another node than
the edit's sender are also counted apart (``cross_latencies_us``): those went through the
nodes' bus.

With ``deflate`` a client offers ``permessage-deflate; client_max_window_bits`` as every
browser does; if the server accepts (aiohttp does by default; ``ws``-based servers do not
unless configured to), it inflates what it receives and, like a browser, compresses every
message it sends (context takeover on both sides, as negotiated).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import os
import random
import re
import resource
import time
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

MARKER = re.compile(rb"<(\d+)\.(\d+)\.(\d+)>")

_SYNC = 0
_AWARENESS = 1
_AUTH = 2
_SYNC_REPLY = 4  # Hocuspocus: a sync message that asks for no step 1 back
_STEP1, _STEP2, _UPDATE = 0, 1, 2
_EMPTY_STATE_VECTOR = b"\x00"
_EMPTY_UPDATE = b"\x00\x00"
_ZERO_MASK = b"\x00\x00\x00\x00"


def var_uint(n: int) -> bytes:
    """lib0's unsigned varint."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    """lib0's varUint8Array (and, for UTF-8 text, varString)."""
    return var_uint(len(data)) + data


def read_var_uint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def insert_update(client_id: int, clock: int, text: bytes) -> bytes:
    """A Yjs v1 update: one ``ContentString`` item of ``text`` (ASCII) in the root text
    ``code``; at its start for the client's first item, else right after its previous one."""
    head = b"\x01\x01" + var_uint(client_id) + var_uint(clock)
    if clock == 0:
        where = b"\x04\x01" + var_bytes(b"code")  # no origins: parent is the root key "code"
    else:
        where = b"\x84" + var_uint(client_id) + var_uint(clock - 1)  # origin: our last item
    return head + where + var_bytes(text) + b"\x00"  # no delete set


def ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    """A final, masked (zero key) client frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + _ZERO_MASK + payload


@dataclass(frozen=True)
class RoomSpec:
    """Where one room's clients connect."""

    index: int
    path: str  # the request target, query string included
    tokens: tuple[str, ...] = ()  # pocdojo: participant tokens, shared round robin
    doc_name: str = ""  # hocuspocus: the document name


@dataclass(frozen=True)
class WorkerSpec:
    worker: int
    host: str
    port: int
    framing: str  # "y-websocket" or "hocuspocus"
    rooms: tuple[RoomSpec, ...]
    clients_per_room: int
    rate: float  # edits per second per client
    warmup: float
    duration: float
    drain: float
    epoch_ns: int
    connect_concurrency: int
    connect_timeout: float
    seed: int
    deflate: bool = False
    # Several server nodes: client c of every room connects to ports[c % len(ports)]
    # (``port`` is then unused).
    ports: tuple[int, ...] = ()


@dataclass
class Stats:
    """What one worker process saw."""

    win_start_us: int = 0
    win_end_us: int = 0
    sent: int = 0
    sent_window: int = 0
    delivered_window: int = 0
    delivered_total: int = 0
    echoes: int = 0
    duplicates: int = 0
    gaps: int = 0
    multi_marker_messages: int = 0
    messages_in: int = 0
    pings: int = 0
    latencies_us: array[int] = field(default_factory=lambda: array("q"))
    # Receipts of edits sent by a client on another node (several ``ports`` only).
    cross_latencies_us: array[int] = field(default_factory=lambda: array("q"))
    clients_per_room: int = 1
    nodes: int = 1
    send_lag_us: array[int] = field(default_factory=lambda: array("q"))
    closed_by_server: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    running: bool = False


def now_us(epoch_ns: int) -> int:
    return (time.monotonic_ns() - epoch_ns) // 1000


class Client(asyncio.Protocol):
    """One socket: the handshake, frames, and the y-websocket conversation."""

    def __init__(
        self,
        stats: Stats,
        epoch_ns: int,
        gidx: int,
        client_id: int,
        host: str,
        path: str,
        doc_name: str,
        deflate: bool = False,
        node: int = 0,
    ) -> None:
        self.stats = stats
        self.node = node
        self.offer_deflate = deflate
        self.inflater: Any = None  # zlib decompressor once permessage-deflate is agreed
        self.deflater: Any = None
        self.fresh_inflater = False  # server_no_context_takeover
        self.fresh_deflater = False  # client_no_context_takeover
        self.epoch_ns = epoch_ns
        self.gidx = gidx
        self.client_id = client_id
        self.host = host
        self.path = path
        self.prefix = var_bytes(doc_name.encode()) if doc_name else b""
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.alive = False
        self.closing = False
        self.clock = 0
        self.seq = 0
        self.sent_window = 0
        self.last_seq: dict[int, int] = {}

    # --- transport ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        )
        if self.offer_deflate:
            request += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        request += "\r\n"
        transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        was_alive, self.alive = self.alive, False
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before sync ({exc})"))
        elif was_alive and not self.closing and self.stats.running:
            self.stats.lost += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status + b" ":
                self._fail(f"upgrade refused: {status.decode(errors='replace')}")
                return
            self._extensions(bytes(buf[:end]))
            del buf[: end + 4]
            self.upgraded = True
            self._opened()
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head : pos + head + n])
            pos += head + n
            opcode = b0 & 0x0F
            if opcode == 2:
                if b0 & 0x40 and self.inflater is not None:
                    if self.fresh_inflater:
                        self.inflater = zlib.decompressobj(-15)
                    payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
                self._message(payload)
            elif opcode == 9:
                self.stats.pings += 1
                self._write(ws_frame(payload, 10))
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._closed_by_server(code, payload[2:].decode(errors="replace"))
                return
            # text, pong and continuation frames: not used by these servers; ignored
        if pos:
            del buf[:pos]

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _send(self, message: bytes) -> None:
        if self.deflater is None:
            self._write(ws_frame(self.prefix + message))
            return
        if self.fresh_deflater:
            self.deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        deflater = self.deflater
        data = deflater.compress(self.prefix + message) + deflater.flush(zlib.Z_SYNC_FLUSH)
        frame = bytearray(ws_frame(data[:-4]))  # RFC 7692: drop the trailing 00 00 ff ff
        frame[0] |= 0x40  # RSV1: compressed
        self._write(bytes(frame))

    def _extensions(self, head: bytes) -> None:
        """Agree to permessage-deflate if the server's 101 accepted it."""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() != b"sec-websocket-extensions":
                continue
            params = [p.strip().lower() for p in value.split(b";")]
            if params and params[0] == b"permessage-deflate":
                self.inflater = zlib.decompressobj(-15)
                self.fresh_inflater = b"server_no_context_takeover" in params
                self.fresh_deflater = b"client_no_context_takeover" in params
                bits = 15
                for p in params:
                    if p.startswith(b"client_max_window_bits="):
                        bits = int(p.split(b"=", 1)[1])
                self.deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits)

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()

    def _closed_by_server(self, code: int, reason: str) -> None:
        if not self.ready.done():
            self._fail(f"closed {code} {reason}")
            return
        if self.alive and self.stats.running:
            self.stats.closed_by_server[f"{code} {reason}".strip()] += 1
        self.closing = True
        self.alive = False
        self._write(ws_frame(code.to_bytes(2, "big"), 8))
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.closing = True
        self.alive = False
        self._write(ws_frame((1000).to_bytes(2, "big"), 8))
        if self.transport is not None:
            self.transport.close()

    # --- y-websocket -------------------------------------------------------------------------

    def _opened(self) -> None:
        if self.prefix:
            self._send(bytes((_AUTH, 0)) + var_bytes(b"bench"))
        else:
            self._send(bytes((_SYNC, _STEP1)) + var_bytes(_EMPTY_STATE_VECTOR))

    def _message(self, message: bytes) -> None:
        self.stats.messages_in += 1
        if self.prefix:
            if not message.startswith(self.prefix):
                return
            message = message[len(self.prefix) :]
        if len(message) < 2:
            return
        kind, sub = message[0], message[1]
        if kind in (_SYNC, _SYNC_REPLY):
            if sub == _UPDATE:
                self._update(message)
            elif sub == _STEP1:
                self._send(bytes((_SYNC, _STEP2)) + var_bytes(_EMPTY_UPDATE))
            elif sub == _STEP2 and not self.ready.done():
                self.alive = True
                self.ready.set_result(None)
        elif kind == _AUTH and self.prefix:
            if sub == 2:  # authenticated
                self._send(bytes((_SYNC, _STEP1)) + var_bytes(_EMPTY_STATE_VECTOR))
            elif sub == 1:
                self._fail("permission denied")
        # awareness, sync status: nothing to do

    def _update(self, message: bytes) -> None:
        stats = self.stats
        found = MARKER.findall(message)
        if len(found) > 1:
            stats.multi_marker_messages += 1
        if not found:
            return
        received = (time.monotonic_ns() - self.epoch_ns) // 1000
        last_seq = self.last_seq
        for sender_b, seq_b, sent_b in found:
            sender = int(sender_b)
            if sender == self.gidx:
                stats.echoes += 1
                continue
            seq = int(seq_b)
            last = last_seq.get(sender, 0)
            if seq <= last:
                stats.duplicates += 1
                continue
            if seq > last + 1:
                stats.gaps += seq - last - 1
            last_seq[sender] = seq
            stats.delivered_total += 1
            sent = int(sent_b)
            if stats.win_start_us <= sent < stats.win_end_us:
                stats.delivered_window += 1
                stats.latencies_us.append(received - sent)
                if stats.nodes > 1 and (sender % stats.clients_per_room) % stats.nodes != self.node:
                    stats.cross_latencies_us.append(received - sent)

    def send_edit(self, at_us: int) -> None:
        self.seq += 1
        marker = b"<%d.%d.%d>" % (self.gidx, self.seq, at_us)
        update = insert_update(self.client_id, self.clock, marker)
        self.clock += len(marker)
        self._send(b"\x00\x02" + var_bytes(update))


# --- the worker process ----------------------------------------------------------------------


def raise_nofile() -> int:
    """Lift the soft open-files limit to the hard one; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Entry point of one client process: connect, report, run, report."""
    raise_nofile()
    try:
        asyncio.run(_worker(conn, spec))
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()


async def _worker(conn: Connection, spec: WorkerSpec) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats(clients_per_room=spec.clients_per_room, nodes=max(1, len(spec.ports)))
    rng = random.Random(spec.seed)
    clients: list[Client] = []
    room_of: list[int] = []
    failures: Counter[str] = Counter()
    gate = asyncio.Semaphore(spec.connect_concurrency)
    ports = spec.ports or (spec.port,)

    async def open_one(room: RoomSpec, c: int) -> None:
        gidx = room.index * spec.clients_per_room + c
        node = c % len(ports)
        port = ports[node]
        path = room.path
        if room.tokens:
            path += ("&" if "?" in path else "?") + "token=" + room.tokens[c % len(room.tokens)]
        client_id = rng.randrange(1, 2**31 - 1)
        async with gate:
            try:
                async with asyncio.timeout(spec.connect_timeout):
                    _, proto = await loop.create_connection(
                        lambda: Client(
                            stats,
                            spec.epoch_ns,
                            gidx,
                            client_id,
                            f"{spec.host}:{port}",
                            path,
                            room.doc_name,
                            spec.deflate,
                            node,
                        ),
                        spec.host,
                        port,
                    )
                    await proto.ready
            except (OSError, TimeoutError) as exc:
                failures[f"{type(exc).__name__}: {exc}"[:120]] += 1
                return
        clients.append(proto)
        room_of.append(room.index)

    started = time.monotonic()
    await asyncio.gather(
        *(open_one(room, c) for room in spec.rooms for c in range(spec.clients_per_room))
    )
    conn.send(
        {"connected": len(clients), "failures": dict(failures),
         "connect_seconds": time.monotonic() - started}
    )  # fmt: skip

    t0_us: int = await loop.run_in_executor(None, conn.recv)
    stats.win_start_us = t0_us + int(spec.warmup * 1e6)
    stats.win_end_us = stats.win_start_us + int(spec.duration * 1e6)
    stop_us = stats.win_end_us
    interval = int(1e6 / spec.rate)
    heap = [(t0_us + rng.randrange(interval), i) for i in range(len(clients))]
    heapq.heapify(heap)
    stats.running = True
    cpu: dict[str, float] = {}

    async def cpu_window() -> None:
        await asyncio.sleep(max(0.0, (stats.win_start_us - now_us(spec.epoch_ns)) / 1e6))
        cpu["start"] = _cpu_seconds()
        await asyncio.sleep(max(0.0, (stats.win_end_us - now_us(spec.epoch_ns)) / 1e6))
        cpu["end"] = _cpu_seconds()

    meter = asyncio.create_task(cpu_window())
    while heap:
        now = now_us(spec.epoch_ns)
        due = heap[0][0]
        if due >= stop_us:
            break  # a rate below 1/(warmup + duration) leaves some clients without a turn
        if due > now:
            await asyncio.sleep((due - now) / 1e6)
            continue
        while heap and heap[0][0] <= now:
            due, i = heapq.heappop(heap)
            client = clients[i]
            if client.alive:
                client.send_edit(now)
                stats.sent += 1
                if stats.win_start_us <= now < stats.win_end_us:
                    stats.sent_window += 1
                    client.sent_window += 1
                    stats.send_lag_us.append(now - due)
            if due + interval < stop_us:
                heapq.heappush(heap, (due + interval, i))
    await meter
    await asyncio.sleep(spec.drain)
    stats.running = False

    # Expected receipts: every edit sent in the window, by every other client of its room.
    per_room: Counter[int] = Counter(room_of)
    expected = sum(c.sent_window * (per_room[r] - 1) for c, r in zip(clients, room_of, strict=True))
    result: dict[str, Any] = {
        "sent": stats.sent,
        "sent_window": stats.sent_window,
        "expected_window": expected,
        "delivered_window": stats.delivered_window,
        "delivered_total": stats.delivered_total,
        "echoes": stats.echoes,
        "duplicates": stats.duplicates,
        "gaps": stats.gaps,
        "multi_marker_messages": stats.multi_marker_messages,
        "messages_in": stats.messages_in,
        "pings": stats.pings,
        "closed_by_server": dict(stats.closed_by_server),
        "lost": stats.lost,
        "alive_at_end": sum(1 for c in clients if c.alive),
        "deflate_agreed": sum(1 for c in clients if c.inflater is not None),
        "latencies_us": stats.latencies_us.tobytes(),
        "cross_latencies_us": stats.cross_latencies_us.tobytes(),
        "send_lag_us": stats.send_lag_us.tobytes(),
        "cpu_window": cpu["end"] - cpu["start"],
    }
    conn.send(result)
    for client in clients:
        client.close()
    with contextlib.suppress(Exception):
        await asyncio.sleep(0.2)
