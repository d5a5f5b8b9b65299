"""Participants' side of recording tests: aiortc peers that play tones to the server's
recorder through their events sockets, and reading back what was recorded."""

from __future__ import annotations

import asyncio
import io
import json
import time
from fractions import Fraction
from typing import Any

import aiohttp
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from av import AudioFrame

from pocdojo.media import mix
from tests.yclient import next_event

WS = aiohttp.ClientWebSocketResponse

RATE = 48000
FRAME = 960  # 20 ms


class Tone(MediaStreamTrack):
    """A microphone that plays a sine tone, paced in real time; notes how long it sent."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self.samples = 0
        self.first: float | None = None
        self.last: float | None = None

    async def recv(self) -> AudioFrame:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        wait = self.first + self.samples / RATE - now
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(FRAME) + self.samples) / RATE
        wave = (np.sin(2 * np.pi * self.frequency * t) * 0.3 * 32767).astype(np.int16)
        frame = AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.samples
        frame.time_base = Fraction(1, RATE)
        self.samples += FRAME
        self.last = time.monotonic()
        return frame

    @property
    def sent(self) -> float:
        assert self.first is not None
        assert self.last is not None
        return self.last - self.first


def decode(data: bytes) -> tuple[np.ndarray[Any, Any], int]:
    """The audio of an encoded file as mono float samples, and its sample rate."""
    return mix.decode(io.BytesIO(data)), mix.RATE


def peaks(samples: np.ndarray[Any, Any], rate: int, near: list[float]) -> list[float]:
    """The spectrum's energy around each frequency of ``near``, relative to its strongest bin."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    top = spectrum.max()
    return [float(spectrum[np.abs(freqs - f) < 10].max() / top) for f in near]


async def speaker(ws: WS, tone: Tone | None, *, video_only: bool = False) -> RTCPeerConnection:
    """Join voice and send ``tone`` to the recorder through the events socket."""
    await ws.send_str(json.dumps({"type": "voice", "inVoice": True}))
    await next_event(ws, "voice")
    pc = RTCPeerConnection()
    if tone is not None:
        pc.addTrack(tone)
    if video_only:
        pc.addTransceiver("video", direction="sendonly")
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    await signal(ws, "offer", {"sdp": pc.localDescription.sdp, "type": "offer"})
    return pc


async def signal(ws: WS, kind: str, data: Any) -> None:
    await ws.send_str(json.dumps({"type": "signal", "to": "recorder", "kind": kind, "data": data}))


async def answered(ws: WS, pc: RTCPeerConnection) -> None:
    answer = await next_event(ws, "signal", within=20)
    assert answer["from"] == "recorder"
    assert answer["kind"] == "answer"
    await pc.setRemoteDescription(RTCSessionDescription(**answer["data"]))
