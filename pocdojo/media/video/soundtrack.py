"""A video's soundtrack: an audio file's first audio stream re-encoded to AAC in the video's
container, a little at a time, so audio and video packets interleave as they are written."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, cast

import av
import structlog
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream

log = structlog.get_logger(__name__)

RATE: Final = 48000
LAYOUT: Final = "mono"


class Soundtrack:
    """Decodes ``source`` and writes it as an AAC stream of ``container``.

    Frames get their timestamps from the samples written so far, so the track starts at
    zero whatever the source's own timestamps say (Opus streams start with a pre-skip). A
    source that cannot be read to its end (a damaged file) gives what could be read.
    """

    def __init__(self, source: Path, container: Any) -> None:
        """Open ``source`` and add the AAC stream to ``container`` (before anything is muxed).

        Raises:
            av.FFmpegError: ``source`` is not a media file or has no audio stream.
        """
        self._input = av.open(str(source), mode="r")
        try:
            if not self._input.streams.audio:
                raise av.FFmpegError(0, f"{source.name} has no audio stream")
            self._frames: Iterator[AudioFrame] = self._input.decode(audio=0)
        except BaseException:
            self._input.close()
            raise
        self._container = container
        self._stream = cast(AudioStream, container.add_stream("aac", rate=RATE, layout=LAYOUT))
        self._resampler = AudioResampler(format="fltp", layout=LAYOUT, rate=RATE)
        self._samples = 0
        self._ended = False

    @property
    def seconds(self) -> float:
        """How much audio has been written."""
        return self._samples / RATE

    def write_until(self, seconds: float) -> None:
        """Write the source's audio up to at least ``seconds`` (or its end)."""
        while not self._ended and self._samples < seconds * RATE:
            try:
                frame = next(self._frames, None)
            except (av.FFmpegError, EOFError) as exc:
                log.warning("soundtrack read in part", error=str(exc))
                frame = None
            if frame is None:
                self._ended = True
                self._encode(self._resampler.resample(None))
                return
            self._encode(self._resampler.resample(frame))

    def _encode(self, frames: list[AudioFrame]) -> None:
        for frame in frames:
            frame.pts = self._samples
            frame.time_base = Fraction(1, RATE)
            self._samples += frame.samples
            self._container.mux(self._stream.encode(frame))

    def finish(self) -> None:
        """Write the rest of the source and flush the encoder."""
        self.write_until(float("inf"))
        self._container.mux(self._stream.encode(None))

    def close(self) -> None:
        """Close the source (the container is its owner's to close)."""
        with contextlib.suppress(av.FFmpegError, OSError):
            self._input.close()
