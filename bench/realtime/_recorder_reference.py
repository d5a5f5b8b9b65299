"""The recorder bench's reference: a bare aiortc receiver, no pocdojo.

``python _recorder_reference.py PORT DIR`` listens on 127.0.0.1:PORT. ``POST /offer`` takes
an SDP offer and answers it from a new ``RTCPeerConnection`` that writes the first audio
track it receives to an Ogg/Opus file in DIR with aiortc's ``MediaRecorder`` (options as
pocdojo's recorder: each page flushed as it completes). ``POST /stop`` reads each peer's
receiver statistics (aiortc's ``inbound-rtp``), stops its recorder, closes it and answers
with the files and the statistics. This is the floor cost of recording N participants with
aiortc itself, under the same senders as pocdojo.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCInboundRtpStreamStats,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRecorder

CLOCK_RATE = 48000  # Opus, the codec aiortc answers with first


@dataclass
class Peer:
    pc: RTCPeerConnection
    path: Path
    recorder: MediaRecorder | None = None
    starting: asyncio.Future[None] | None = None


def make_app(folder: Path) -> web.Application:
    peers: list[Peer] = []

    async def offer(request: web.Request) -> web.Response:
        body = await request.json()
        peer = Peer(RTCPeerConnection(), folder / f"{uuid.uuid4().hex}.ogg")

        @peer.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind != "audio" or peer.recorder is not None:
                return
            peer.recorder = MediaRecorder(
                str(peer.path), format="ogg", options={"flush_packets": "1"}
            )
            peer.recorder.addTrack(track)
            peer.starting = asyncio.ensure_future(peer.recorder.start())

        await peer.pc.setRemoteDescription(RTCSessionDescription(**body))
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        peers.append(peer)
        local = peer.pc.localDescription
        return web.json_response({"sdp": local.sdp, "type": local.type})

    async def stop(request: web.Request) -> web.Response:
        parts: list[dict[str, Any]] = []
        for peer in peers:
            received = lost = 0
            jitter = 0.0
            for receiver in peer.pc.getReceivers():
                for stats in (await receiver.getStats()).values():
                    if isinstance(stats, RTCInboundRtpStreamStats):
                        received += stats.packetsReceived
                        lost += max(0, stats.packetsLost)
                        jitter = max(jitter, stats.jitter / CLOCK_RATE)
            if peer.recorder is not None:
                await peer.recorder.stop()
            await peer.pc.close()
            parts.append({"path": str(peer.path), "received": received, "lost": lost,
                          "jitter": jitter})  # fmt: skip
        peers.clear()
        return web.json_response({"parts": parts})

    app = web.Application()
    app.router.add_post("/offer", offer)
    app.router.add_post("/stop", stop)
    return app


if __name__ == "__main__":
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    web.run_app(make_app(folder), host="127.0.0.1", port=port, print=None)
