"""The recorder bench's participants: aiortc peers that each send a tone to a recorder.

Run by ``recorder.py`` as a process of its own (its CPU is not the server's), talking JSON
lines: it reads a spec on stdin, connects every participant and prints ``{"event":
"ready"}``; it reads ``{"start_at": t}`` (``CLOCK_MONOTONIC``, shared by the processes of
the machine), then every tone plays exactly ``budget`` samples from ``t`` on, paced in real
time, and the process prints ``{"event": "sent"}`` with what each sender sent; it reads
``{"close": true}``, closes everything and prints ``{"event": "closed"}``.

Two ways to reach the recorder (``mode`` in the spec):

* ``pocdojo``: the participant's events socket (``url``), as the web app does: join voice,
  ``{"type": "signal", "to": "recorder", "kind": "offer"}``, the answer comes back on the
  socket.
* ``reference``: ``POST url`` with the offer, the answer in the response (the bare aiortc
  receiver of ``_recorder_reference.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from fractions import Fraction
from typing import Any

import aiohttp
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCOutboundRtpStreamStats,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.codecs.opus import OpusEncoder
from av import AudioFrame, Packet

RATE = 48000
FRAME = 960  # 20 ms, one RTP packet


class Tone(MediaStreamTrack):
    """A microphone playing a sine tone: nothing until ``start_at``, then ``budget`` samples
    in 20 ms Opus packets paced in real time, then nothing again. Notes how late each packet
    was made.

    The packets are encoded beforehand, one second of them played in a loop (the tone's
    frequency is a whole number of hertz, so the second ends where it began), with aiortc's
    own Opus encoder and settings: the sender then only packs them, and the clients, which
    share the machine with the server, cost about a third less CPU than encoding each frame.
    """

    kind = "audio"

    def __init__(self, frequency: float, budget: int) -> None:
        super().__init__()
        self.frequency = frequency
        self.budget = budget
        self.samples = 0
        self.start_at: float | None = None
        self.go = asyncio.Event()
        self.done = asyncio.Event()
        self.late: list[float] = []  # seconds behind schedule, per packet
        self.payloads = _encoded_second(frequency)

    async def recv(self) -> Packet[Any]:
        await self.go.wait()
        assert self.start_at is not None
        if self.samples >= self.budget:
            await asyncio.Future()  # the tone has ended: the sender waits until closed
        wait = self.start_at + self.samples / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.late.append(max(0.0, -wait))
        packet = Packet(self.payloads[(self.samples // FRAME) % len(self.payloads)])
        packet.pts = self.samples
        packet.time_base = Fraction(1, RATE)
        self.samples += FRAME
        if self.samples >= self.budget:
            self.done.set()
        return packet


def _encoded_second(frequency: float) -> list[bytes]:
    """One second of the tone as 50 Opus payloads, from an encoder already a second in."""
    encoder = OpusEncoder()
    payloads: list[bytes] = []
    for i in range(2 * RATE // FRAME):
        t = (np.arange(FRAME) + i * FRAME) / RATE
        wave = (np.sin(2 * np.pi * frequency * t) * 0.3 * 32767).astype(np.int16)
        frame = AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = i * FRAME
        frame.time_base = Fraction(1, RATE)
        payloads += encoder.encode(frame)[0]
    return payloads[-RATE // FRAME :]


class Participant:
    def __init__(self, spec: dict[str, Any], budget: int) -> None:
        self.url: str = spec["url"]
        self.tone = Tone(float(spec["frequency"]), budget)
        self.pc = RTCPeerConnection()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.error: str | None = None
        self.reading: asyncio.Future[None] | None = None
        self.closing = False

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and '"error"' in msg.data:
                event = json.loads(msg.data)
                if event.get("type") == "error" and self.error is None:
                    self.error = f"server: {event}"
        if self.error is None and not self.closing:
            self.error = f"events socket closed ({ws.close_code})"

    async def connect(self, http: aiohttp.ClientSession, mode: str, within: float) -> None:
        connected = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            if self.pc.connectionState == "connected":
                connected.set()

        self.pc.addTrack(self.tone)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = {"sdp": self.pc.localDescription.sdp, "type": "offer"}
        if mode == "reference":
            async with http.post(self.url, json=offer) as resp:
                resp.raise_for_status()
                answer = await resp.json()
        else:
            self.ws = ws = await http.ws_connect(self.url, heartbeat=None)
            await _event(ws, "welcome", within)
            await ws.send_str(json.dumps({"type": "voice", "inVoice": True}))
            await _event(ws, "voice", within)
            await ws.send_str(json.dumps({"type": "signal", "to": "recorder", "kind": "offer",
                                          "data": offer}))  # fmt: skip
            answer = (await _event(ws, "signal", within))["data"]
            # read on (pings are answered while reading; a server error is kept)
            self.reading = asyncio.ensure_future(self._read(ws))
        await self.pc.setRemoteDescription(RTCSessionDescription(**answer))
        await asyncio.wait_for(connected.wait(), within)

    async def sent(self) -> dict[str, Any]:
        packets = 0
        for sender in self.pc.getSenders():
            for stats in (await sender.getStats()).values():
                if isinstance(stats, RTCOutboundRtpStreamStats):
                    packets += stats.packetsSent
        late = sorted(self.tone.late) or [0.0]
        return {
            "frequency": self.tone.frequency,
            "samples": self.tone.samples,
            "packets_sent": packets,
            "late_p99": late[min(len(late) - 1, int(0.99 * len(late)))],
            "late_max": late[-1],
            "error": self.error,
        }

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            await self.pc.close()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reading is not None:
            self.reading.cancel()


async def _event(ws: aiohttp.ClientWebSocketResponse, kind: str, within: float) -> Any:
    """The next event of type ``kind`` on an events socket; an ``error`` event raises."""
    async with asyncio.timeout(within):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"events socket closed while waiting for {kind}: {msg}")
            event = json.loads(msg.data)
            if event.get("type") == "error":
                raise RuntimeError(f"server refused: {event}")
            if event.get("type") == kind:
                return event


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def read_line(reader: asyncio.StreamReader) -> Any:
    line = await reader.readline()
    if not line:
        raise SystemExit(0)  # the bench went away
    return json.loads(line)


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = await read_line(reader)
    budget = int(spec["budget"])
    people = [Participant(p, budget) for p in spec["participants"]]
    gate = asyncio.Semaphore(int(spec.get("connect_concurrency", 8)))
    timeout = float(spec.get("timeout", 60))

    async def connect(person: Participant, http: aiohttp.ClientSession) -> None:
        async with gate:
            try:
                await person.connect(http, spec["mode"], timeout)
            except Exception as exc:
                person.error = f"{type(exc).__name__}: {exc}"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        try:
            await asyncio.gather(*(connect(p, http) for p in people))
            emit("ready", errors=[p.error for p in people if p.error])
            start_at = float((await read_line(reader))["start_at"])
            for person in people:
                person.tone.start_at = start_at
                person.tone.go.set()
            live = [p.tone.done.wait() for p in people if p.error is None]
            await asyncio.wait_for(asyncio.gather(*live), budget / RATE + timeout)
            emit("sent", participants=[await p.sent() for p in people])
            await read_line(reader)  # close
        finally:
            await asyncio.gather(*(p.close() for p in people))
    emit("closed")


if __name__ == "__main__":
    asyncio.run(main())
