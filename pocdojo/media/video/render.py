"""Render a yearly video and its thumbnail: validation, progress, files written atomically."""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from PIL import Image

from pocdojo.media.video.encode import Mp4Writer
from pocdojo.media.video.model import (
    FPS,
    HEIGHT,
    THUMBNAIL_SIZE,
    WIDTH,
    VideoResult,
    VideoSpec,
    segment_frames,
    year_totals,
)
from pocdojo.media.video.templates import Template, template_named
from pocdojo.media.video.timeline import frame_runs

# Encoding ends at this share of the progress; the rest covers finishing the files.
_ENCODED_PERCENT: Final = 97
# Measured at 200-230 frames/s all in on a busy two-core machine; rounded down for safety.
_ESTIMATE_FRAMES_PER_SECOND: Final = 150
_ESTIMATE_SETUP_SECONDS: Final = 1.0


def estimate_seconds(poc_count: int) -> int:
    """A rough, deliberately pessimistic render time for a video of ``poc_count`` POCs."""
    frames = sum(segment_frames(max(poc_count, 1)))
    return math.ceil(_ESTIMATE_SETUP_SECONDS + frames / _ESTIMATE_FRAMES_PER_SECOND)


class _Progress:
    """Turns frames written into whole percents, reporting each one once, in order."""

    def __init__(self, callback: Callable[[int], None] | None, total_frames: int) -> None:
        self._callback = callback
        self._total = total_frames
        self._last = -1

    def report(self, percent: int) -> None:
        if self._callback is not None and percent > self._last:
            self._last = percent
            self._callback(percent)

    def frames(self, written: int) -> None:
        self.report(written * _ENCODED_PERCENT // self._total)


@contextlib.contextmanager
def staged(*targets: Path) -> Iterator[tuple[Path, ...]]:
    """Temporary paths beside ``targets``, renamed onto them only if the block succeeds.

    A crash or an error never leaves a partial file under a final name; temporary files are
    removed either way.
    """
    token = secrets.token_hex(6)
    temporary = tuple(target.with_name(f".{target.name}.{token}.part") for target in targets)
    try:
        yield temporary
        for path, target in zip(temporary, targets, strict=True):
            os.replace(path, target)
    finally:
        for path in temporary:
            path.unlink(missing_ok=True)


def _stills(template: Template, spec: VideoSpec, intro: Image.Image) -> Iterator[Image.Image]:
    yield intro
    for index in range(len(spec.pocs)):
        yield template.card(spec, index)
    yield template.outro(spec, year_totals(spec.pocs))


def _validated(spec: VideoSpec) -> Template:
    template = template_named(spec.template)
    if not spec.pocs:
        raise ValueError("a yearly video needs at least one POC")
    return template


def render_yearly_video(
    spec: VideoSpec,
    video_path: Path,
    thumbnail_path: Path,
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Render ``spec`` as an H.264 MP4 (1280x720, 30 fps) and a 640x360 JPEG thumbnail.

    The video is an intro, one card per POC and an outro with the year's totals. This is
    CPU-bound and blocking: run it in a worker thread or process. Both files appear under
    their final names only once complete.

    Args:
        spec: What to show.
        video_path: Where the MP4 goes (replaced if it exists).
        thumbnail_path: Where the JPEG thumbnail of the intro goes (replaced if it exists).
        progress: Called with whole percents, increasing, from 0 to 100 (100 once both files
            are in place). An exception it raises aborts the render, leaving no files.

    Returns:
        The video's duration, frame count, card count and size.

    Raises:
        ValueError: The template is unknown or there are no POCs.
    """
    template = _validated(spec)
    frames = segment_frames(len(spec.pocs))
    tracker = _Progress(progress, sum(frames))
    tracker.report(0)
    intro = template.intro(spec)
    with staged(video_path, thumbnail_path) as (video_part, thumbnail_part):
        with Mp4Writer(video_part) as writer:
            stills = _stills(template, spec, intro)
            for frame, repeat in frame_runs(stills, frames, template.blank(), template.transition):
                writer.write(frame, repeat)
                tracker.frames(writer.frames)
        thumbnail = intro.resize(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
        thumbnail.save(thumbnail_part, format="JPEG", quality=85, optimize=True)
    tracker.report(100)
    return VideoResult(
        duration_seconds=writer.frames / FPS,
        frames=writer.frames,
        cards=len(spec.pocs),
        width=WIDTH,
        height=HEIGHT,
    )
