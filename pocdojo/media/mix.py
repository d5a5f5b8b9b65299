"""Mixing recorded parts into one track: each part decoded, placed at its start offset, the
parts summed, and the mix encoded to Ogg/Opus and to M4A/AAC (for Apple devices)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import av
import numpy as np
import structlog
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream

log = structlog.get_logger(__name__)

RATE = 48000


@dataclass(frozen=True)
class Track:
    path: Path
    offset: float  # seconds from the start of the recording


def decode(source: Path | BinaryIO) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The first audio stream of a file (a path or an open binary file) as mono float
    samples at ``RATE``: as much of it as can be read (a part its node was killed while
    writing ends early, or holds nothing)."""
    resampler = AudioResampler(format="flt", layout="mono", rate=RATE)
    chunks = []
    name = source.name if isinstance(source, Path) else "stream"
    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, EOFError) as exc:
        log.warning("recording part read in part", path=name, error=str(exc))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


def mix(tracks: Sequence[Track], progress: Callable[[float], None]) -> np.ndarray[Any, Any]:
    """The tracks summed at their offsets (clipped to [-1, 1])."""
    decoded = []
    for i, track in enumerate(tracks):
        decoded.append((round(track.offset * RATE), decode(track.path)))
        progress((i + 1) / len(tracks))
    length = max((start + len(samples) for start, samples in decoded), default=0)
    out = np.zeros(length, dtype=np.float32)
    for start, samples in decoded:
        out[start : start + len(samples)] += samples
    return np.clip(out, -1.0, 1.0)


def encode(samples: np.ndarray[Any, Any], path: Path, fmt: str) -> None:
    """Write mono ``samples`` to ``path``: ``ogg`` (Opus) or ``ipod`` (M4A, AAC)."""
    codec, sample_format, size = ("libopus", "flt", 960) if fmt == "ogg" else ("aac", "fltp", 1024)
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = cast(AudioStream, container.add_stream(codec, rate=RATE, layout="mono"))
        for pts in range(0, len(samples), size):
            chunk = samples[pts : pts + size]
            if len(chunk) < size:
                chunk = np.pad(chunk, (0, size - len(chunk)))
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk, dtype=np.float32).reshape(1, -1),
                format=sample_format,
                layout="mono",
            )
            frame.sample_rate = RATE
            frame.pts = pts
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
