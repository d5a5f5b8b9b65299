"""The recorder peer: while a dojo is recorded, each participant in voice sends its
microphone to the node holding its events socket, where an aiortc ``RTCPeerConnection``
answers (signals addressed ``"to": "recorder"``) and writes the audio as it arrives to an
Ogg/Opus file of its own (a part), with its start offset from the recording's start. When the
recording stops, every node closes its recorder peers and uploads its parts to the object
store, recording a row per part for the mixing job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCInboundRtpStreamStats,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription, candidate_from_sdp
from av import AudioFrame
from prometheus_client import CollectorRegistry, Counter, Histogram

from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.ice import ice_servers
from pocdojo.core.objectstore import ObjectStore, recording_key
from pocdojo.core.settings import Settings

log = structlog.get_logger(__name__)

RECORDER = "recorder"  # the address of the server's peer in signals
SAMPLE_EVERY = 2.0  # seconds between two readings of a recorder peer's receiver statistics


class RecorderError(Exception):
    """A recorder signal that is refused; nothing changed. ``code`` goes to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RecorderMetrics:
    """What the recorder peers received, from aiortc's receiver statistics (``inbound-rtp``):
    packets counted as they come (sampled every ``SAMPLE_EVERY`` seconds while a peer is
    open), each stream's loss and jitter when it closes. A part whose packets did not all
    come has gaps."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.packets_received = Counter(
            "pocdojo_recorder_packets_received",
            "RTP packets the recorder peers received (inbound-rtp packetsReceived)",
            registry=registry,
        )
        self.packets_lost = Counter(
            "pocdojo_recorder_packets_lost",
            "RTP packets the recorder peers expected and never received (packetsLost)",
            registry=registry,
        )
        self.stream_loss = Histogram(
            "pocdojo_recorder_stream_loss_ratio",
            "Per audio stream a recorder peer received: packets lost over packets expected",
            buckets=(0.001, 0.01, 0.05, 0.2, 1),
            registry=registry,
        )
        self.stream_jitter = Histogram(
            "pocdojo_recorder_stream_jitter_seconds",
            "Per audio stream a recorder peer received: interarrival jitter when it closed",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
            registry=registry,
        )

    async def count(
        self, pc: RTCPeerConnection, counted: dict[str, tuple[int, int]], *, final: bool
    ) -> None:
        """Add what ``pc``'s audio receivers received since ``counted`` (what was added
        before, by stream; updated here); with ``final`` (the peer closes), each stream's loss
        and jitter too."""
        rate = _clock_rate(pc)
        for receiver in pc.getReceivers():
            if receiver.track.kind != "audio":
                continue
            for stats in (await receiver.getStats()).values():
                if not isinstance(stats, RTCInboundRtpStreamStats):
                    continue
                lost = max(0, stats.packetsLost)  # negative when packets came twice
                received_before, lost_before = counted.get(stats.id, (0, 0))
                self.packets_received.inc(max(0, stats.packetsReceived - received_before))
                self.packets_lost.inc(max(0, lost - lost_before))
                counted[stats.id] = (
                    max(received_before, stats.packetsReceived),
                    max(lost_before, lost),
                )
                if not final:
                    continue
                if stats.packetsReceived + lost:
                    self.stream_loss.observe(lost / (stats.packetsReceived + lost))
                self.stream_jitter.observe(stats.jitter / rate)


class _Rebased(MediaStreamTrack):
    """The received track, its timestamps starting at zero; notes when the first frame came."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, on_first: Callable[[float], None]) -> None:
        super().__init__()
        self._source = source
        self._on_first = on_first
        self._first_pts: int | None = None
        self.first_at: float | None = None  # wall-clock time of the first frame

    async def recv(self) -> AudioFrame:
        frame = await self._source.recv()
        assert isinstance(frame, AudioFrame)
        if self._first_pts is None:
            self._first_pts = frame.pts or 0
            self.first_at = time.time()
            self._on_first(self.first_at)
        if frame.pts is not None:
            frame.pts -= self._first_pts
        return frame


@dataclass
class _Capture:
    """One participant's recorder peer and the part it writes."""

    user_id: UUID
    pc: RTCPeerConnection
    path: Path
    key: str
    recorder: MediaRecorder | None = None
    track: _Rebased | None = None
    starting: asyncio.Future[None] | None = None
    closed: bool = False
    metrics: RecorderMetrics | None = None
    counted: dict[str, tuple[int, int]] = field(default_factory=dict)  # by stream
    sampler: asyncio.Task[None] | None = None

    async def sample(self) -> None:
        """Count what came, every ``SAMPLE_EVERY`` seconds, until the peer closes."""
        assert self.metrics is not None
        while not self.closed:
            await asyncio.sleep(SAMPLE_EVERY)
            with contextlib.suppress(Exception):  # statistics never end a recording
                await self.metrics.count(self.pc, self.counted, final=False)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.sampler is not None:
            self.sampler.cancel()
        if self.metrics is not None:
            with contextlib.suppress(Exception):  # statistics never keep a peer open
                await self.metrics.count(self.pc, self.counted, final=True)
        if self.recorder is not None:
            with contextlib.suppress(Exception):
                await self.recorder.stop()
        await self.pc.close()


@dataclass
class _Running:
    """A recording as this node holds it: the parts its sockets' participants send."""

    recording: recordings_db.Recording
    captures: dict[UUID, _Capture] = field(default_factory=dict)  # by user, the live one
    done: list[_Capture] = field(default_factory=list)  # replaced or hung up


class Recorders:
    """This node's recorder peers, per recorded session."""

    def __init__(
        self,
        pool: Any,
        settings: Settings,
        store: Callable[[], ObjectStore | None],
        metrics: RecorderMetrics | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._running: dict[UUID, _Running] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    @property
    def directory(self) -> Path:
        return Path(self._settings.data_dir) / "recordings"

    async def signal(
        self,
        session_id: UUID,
        tenant_id: UUID,
        user_id: UUID,
        in_voice: bool,
        kind: str,
        data: Any,
    ) -> dict[str, Any] | None:
        """Take a signal addressed to the recorder; returns the answer to send back, if any.

        Raises:
            RecorderError: refused (no recording runs, the sender is not in voice, an offer
                without audio, SDP that cannot be read); nothing changed.
        """
        if kind == "offer":
            return await self._offer(session_id, tenant_id, user_id, in_voice, data)
        running = self._running.get(session_id)
        capture = running.captures.get(user_id) if running is not None else None
        if kind == "candidate":
            if capture is None:
                raise RecorderError("no_recorder_peer", "send an offer to the recorder first")
            await _add_candidate(capture.pc, data)
        elif kind == "bye":
            if capture is not None and running is not None:
                await self._hang_up(running, capture)
        else:
            raise RecorderError("invalid_signal", "the recorder takes offer, candidate and bye")
        return None

    async def _offer(
        self, session_id: UUID, tenant_id: UUID, user_id: UUID, in_voice: bool, data: Any
    ) -> dict[str, Any]:
        if not in_voice:
            raise RecorderError("not_in_voice", "join voice before sending audio to the recorder")
        sdp = data.get("sdp") if isinstance(data, dict) else None
        if not isinstance(sdp, str) or (isinstance(data, dict) and data.get("type") != "offer"):
            raise RecorderError("invalid_sdp", 'an offer\'s data is {"sdp": "…", "type": "offer"}')
        media = _media_kinds(sdp)
        if not media:
            raise RecorderError("invalid_sdp", "the offer's SDP holds no media section")
        if "audio" not in media:
            raise RecorderError("no_audio", "the offer sends no audio")
        running = await self._current(session_id, tenant_id)
        if running is None:
            raise RecorderError("not_recording", "no recording is running")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice(user_id)))
        recording = running.recording
        # tenant/session/name: a node restarted after dying finds what to upload where
        folder = self.directory / str(recording.tenant_id) / str(recording.session_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{recording.id}-{user_id}-{uuid.uuid4().hex[:8]}.ogg"
        key = recording_key(recording.tenant_id, recording.session_id, path.name)
        capture = _Capture(user_id, pc, path, key, metrics=self._metrics)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind != "audio" or capture.recorder is not None or capture.closed:
                return
            capture.track = _Rebased(track, lambda at: self._started(recording, key, at))
            # Each page reaches the file as soon as it is complete (every second), so a node
            # killed mid-recording leaves all but its last second.
            capture.recorder = MediaRecorder(
                str(path), format="ogg", options={"flush_packets": "1"}
            )
            capture.recorder.addTrack(capture.track)
            capture.starting = asyncio.ensure_future(capture.recorder.start())

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            answer = await pc.createAnswer()
            assert answer is not None
            await pc.setLocalDescription(answer)
        except Exception as exc:
            await capture.close()
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise RecorderError("invalid_sdp", f"the offer could not be taken: {exc}") from exc
        if self._running.get(session_id) is not running:  # stopped meanwhile
            await capture.close()
            raise RecorderError("not_recording", "no recording is running")
        async with tenant_tx(self._pool, tenant_id) as conn:
            await recordings_db.add_part(conn, recording, user_id, key)
        previous = running.captures.get(user_id)
        running.captures[user_id] = capture
        if self._metrics is not None:
            capture.sampler = asyncio.create_task(capture.sample(), name="recorder-stats")
        if previous is not None:
            await self._hang_up(running, previous)
        local = pc.localDescription
        return {"sdp": local.sdp, "type": local.type}

    def _started(self, recording: recordings_db.Recording, key: str, at: float) -> None:
        """A part's first audio came: its offset is stored at once (a node that dies later
        still leaves a part that can be placed)."""
        offset = max(0.0, at - recording.started_at.timestamp())

        async def store() -> None:
            async with tenant_tx(self._pool, recording.tenant_id) as conn:
                await recordings_db.part_started(conn, recording.id, key, offset)

        task = asyncio.ensure_future(store())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ice(self, user_id: UUID) -> list[RTCIceServer]:
        servers = ice_servers(self._settings, user_id)["iceServers"]
        return [RTCIceServer(**server) for server in servers]

    async def _current(self, session_id: UUID, tenant_id: UUID) -> _Running | None:
        """The recording running now, as this node holds it (read from the database the
        first time a participant of this node sends an offer)."""
        running = self._running.get(session_id)
        if running is not None:
            return running
        async with tenant_tx(self._pool, tenant_id) as conn:
            recording = await recordings_db.running(conn, session_id)
        if recording is None:
            return None
        return self._running.setdefault(session_id, _Running(recording))

    async def _hang_up(self, running: _Running, capture: _Capture) -> None:
        if running.captures.get(capture.user_id) is capture:
            del running.captures[capture.user_id]
        running.done.append(capture)
        await capture.close()

    async def left(self, session_id: UUID, user_id: UUID) -> None:
        """The user's events socket closed: their recorder peer ends (the part is kept)."""
        running = self._running.get(session_id)
        capture = running.captures.get(user_id) if running is not None else None
        if running is not None and capture is not None:
            await self._hang_up(running, capture)

    async def stopped(self, session_id: UUID, recording_id: UUID) -> None:
        """The recording stopped (on any node): close this node's recorder peers, upload the
        parts they wrote and record them."""
        running = self._running.get(session_id)
        if running is None or running.recording.id != recording_id:
            return
        del self._running[session_id]
        captures = [*running.done, *running.captures.values()]
        for capture in captures:
            await capture.close()
        for capture in captures:
            try:
                await self._upload(running.recording, capture)
            except Exception:
                log.exception("recording part not uploaded", path=capture.path.name)

    async def _upload(self, recording: recordings_db.Recording, capture: _Capture) -> None:
        track = capture.track
        if track is None or track.first_at is None or not capture.path.exists():
            async with tenant_tx(self._pool, recording.tenant_id) as conn:
                await recordings_db.drop_part(conn, recording.id, capture.key)
            with contextlib.suppress(OSError):
                capture.path.unlink(missing_ok=True)
            return  # no audio ever came
        store = self._store()
        if store is None:
            return  # the node is stopping: the part stays on disk
        offset = max(0.0, track.first_at - recording.started_at.timestamp())
        await self._put(store, recording.tenant_id, recording.id, capture.key, capture.path, offset)

    async def _put(
        self, store: ObjectStore, tenant_id: UUID, recording_id: UUID, key: str, path: Path,
        offset: float,
    ) -> None:  # fmt: skip
        size = (await asyncio.to_thread(path.stat)).st_size
        await store.put_file(key, path, "audio/ogg")
        async with tenant_tx(self._pool, tenant_id) as conn:
            await recordings_db.part_uploaded(conn, recording_id, key, offset, size)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def recover(self, requeue: Callable[[UUID, UUID], Awaitable[None]]) -> None:
        """Upload the parts a previous run of this node wrote and never uploaded (it was
        killed): each is complete up to where it stopped. A recording already mixed without
        them is mixed again (``requeue(tenant_id, recording_id)`` queues its job)."""
        store = self._store()
        if store is None or not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*/*/*.ogg")):
            try:
                tenant_id, session_id = UUID(path.parent.parent.name), UUID(path.parent.name)
                key = recording_key(tenant_id, session_id, path.name)
                async with tenant_tx(self._pool, tenant_id) as conn:
                    left = await recordings_db.left_part(conn, key)
                if left is None or left.start_offset is None:  # gone, done, or no audio came
                    path.unlink(missing_ok=True)
                    continue
                await self._put(store, tenant_id, left.recording_id, key, path, left.start_offset)
                if left.mixed:
                    async with tenant_tx(self._pool, tenant_id) as conn:
                        await recordings_db.mix_again(conn, left.recording_id)
                    await requeue(tenant_id, left.recording_id)
                log.info("recording part recovered", key=key)
            except Exception:
                log.exception("recording part not recovered", path=path.name)

    async def close(self) -> None:
        """The node stops: end every recorder peer; what they wrote stays on disk."""
        for running in list(self._running.values()):
            for capture in [*running.done, *running.captures.values()]:
                await capture.close()
        self._running.clear()


def _clock_rate(pc: RTCPeerConnection) -> int:
    """The RTP clock rate of the audio codec ``pc`` answered with first (Opus: 48 kHz), the
    unit of aiortc's jitter."""
    local = pc.localDescription
    with contextlib.suppress(Exception):
        for media in SessionDescription.parse(local.sdp).media:
            if media.kind == "audio" and media.rtp.codecs:
                return media.rtp.codecs[0].clockRate
    return 48000


def _media_kinds(sdp: str) -> set[str]:
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception:
        return set()
    return {m.kind for m in parsed.media}


async def _add_candidate(pc: RTCPeerConnection, data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("candidate"), str):
        raise RecorderError("invalid_signal", 'a candidate\'s data is {"candidate": "…", …}')
    text = data["candidate"].removeprefix("candidate:")
    if not text:  # the end of candidates
        return
    try:
        candidate = candidate_from_sdp(text)
    except (ValueError, IndexError) as exc:
        raise RecorderError("invalid_signal", "the candidate could not be read") from exc
    candidate.sdpMid = data.get("sdpMid")
    candidate.sdpMLineIndex = data.get("sdpMLineIndex")
    with contextlib.suppress(MediaStreamError):
        await pc.addIceCandidate(candidate)
