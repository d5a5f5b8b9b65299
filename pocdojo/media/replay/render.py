"""Render a replay video and its thumbnail: the code as it changed, frame by frame, with the
recording's voice as its soundtrack."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from PIL import Image

from pocdojo.media.replay.frame import CodeView, header
from pocdojo.media.replay.model import FPS, THUMBNAIL_SIZE, CodeState, ReplayResult, ReplaySpec
from pocdojo.media.video.encode import Mp4Writer, video_frame
from pocdojo.media.video.render import staged

# Encoding ends at this share of the progress; the rest covers finishing the files.
_ENCODED_PERCENT: Final = 97
# Measured at about 50 drawn frames/s and 400 repeated frames/s on a busy two-core machine,
# rounded down; a recording is assumed to change its code in half its frames.
_ESTIMATE_SECONDS_PER_FRAME: Final = (1 / 40 + 1 / 300) / 2
_ESTIMATE_SETUP_SECONDS: Final = 2.0


def estimate_seconds(duration: float) -> int:
    """A rough, deliberately pessimistic render time for a recording of ``duration`` s."""
    frames = math.ceil(max(duration, 0.0) * FPS)
    return math.ceil(_ESTIMATE_SETUP_SECONDS + frames * _ESTIMATE_SECONDS_PER_FRAME)


def _frame_states(states: Iterable[CodeState], frames: int) -> Iterator[CodeState | None]:
    """For each frame, the state to show if it changed since the previous frame, else None.

    A frame at time t shows the last state at or before t; the last frame shows the last
    state of all (edits made as the recording stopped still end the video).
    """
    pending = iter(states)
    upcoming = next(pending, None)
    for index in range(frames):
        t = index / FPS
        current: CodeState | None = None
        while upcoming is not None and (upcoming.t <= t or index == frames - 1):
            current, upcoming = upcoming, next(pending, None)
        yield current


def render_replay_video(
    spec: ReplaySpec,
    states: Iterable[CodeState],
    video_path: Path,
    thumbnail_path: Path,
    *,
    audio: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Render the code of a recording as an H.264 MP4 (1280x720, 10 fps) with an AAC
    soundtrack, and a 640x360 JPEG thumbnail of its last frame.

    A frame is drawn only when the code changed or the clock in its header moved to the next
    second; every other frame repeats the one before. This is CPU-bound and blocking: run it
    in a worker thread. Both files appear under their final names only once complete.

    Args:
        spec: The title, language, duration and authors.
        states: The code over time, in time order (the first one at 0).
        video_path: Where the MP4 goes (replaced if it exists).
        thumbnail_path: Where the JPEG thumbnail goes (replaced if it exists).
        audio: The soundtrack (any file PyAV reads, e.g. Ogg/Opus), or None for silence.
        progress: Called with whole percents, increasing, up to 100 (once both files are in
            place). An exception it raises aborts the render, leaving no files.

    Returns:
        The video's duration and frame counts.
    """
    frames = max(1, math.ceil(spec.duration * FPS))
    reported = -1

    def report(percent: int) -> None:
        nonlocal reported
        if progress is not None and percent > reported:
            reported = percent
            progress(percent)

    report(0)
    view = CodeView(spec)
    code = view.draw(CodeState(0.0, "", (), 0))
    shown = header(code, spec, 0)
    drawn = 0
    with staged(video_path, thumbnail_path) as (video_part, thumbnail_part):
        with Mp4Writer(video_part, fps=FPS, audio=audio) as writer:
            frame = video_frame(shown)
            second = 0
            for index, state in enumerate(_frame_states(states, frames)):
                now = index // FPS
                if state is not None or now != second or index == 0:
                    if state is not None:
                        code = view.draw(state)
                    second = now
                    shown = header(code, spec, now)
                    frame = video_frame(shown)
                    drawn += 1
                writer.write(frame)
                report(writer.frames * _ENCODED_PERCENT // frames)
        thumbnail = shown.resize(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
        thumbnail.save(thumbnail_part, format="JPEG", quality=85, optimize=True)
    report(100)
    return ReplayResult(duration_seconds=writer.frames / FPS, frames=writer.frames, drawn=drawn)
