"""The frame sequence: stills held for their segment, joined by transitions and fades."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from av.video.frame import VideoFrame
from PIL import Image

from pocdojo.media.video.encode import Picture, picture
from pocdojo.media.video.model import FADE_IN_FRAMES, FADE_OUT_FRAMES, TRANSITION_FRAMES
from pocdojo.media.video.motion import DISSOLVE, Transition, between

Run = tuple[VideoFrame, int]


def _steps(before: Picture, after: Picture, steps: int, transition: Transition) -> Iterator[Run]:
    for step in range(1, steps + 1):
        yield between(before, after, step / (steps + 1), transition), 1


def frame_runs(
    stills: Iterable[Image.Image],
    frames: Sequence[int],
    blank: Image.Image,
    transition: Transition,
) -> Iterator[Run]:
    """The video as runs of one frame repeated, ``sum(frames)`` frames in all.

    The first segment fades in from ``blank`` and the last fades out to it; every other
    segment opens with ``transition`` from the one before. Transitions take frames from the
    start of their segment, so each segment lasts exactly its ``frames``.

    Args:
        stills: One RGB image per segment, drawn lazily: only two are held at a time.
        frames: Each segment's length in frames; long enough for its transitions.
        blank: The background the video starts from and ends on.
        transition: How one segment gives way to the next.

    Yields:
        (frame, how many times to write it), in order.
    """
    empty = picture(blank)
    previous = empty
    last = len(frames) - 1
    for index, (still, length) in enumerate(zip(stills, frames, strict=True)):
        current = picture(still)
        if index == 0:
            yield from _steps(empty, current, FADE_IN_FRAMES, DISSOLVE)
        else:
            yield from _steps(previous, current, TRANSITION_FRAMES, transition)
        lead = FADE_IN_FRAMES if index == 0 else TRANSITION_FRAMES
        tail = FADE_OUT_FRAMES if index == last else 0
        yield current.frame, length - lead - tail
        if tail:
            yield from _steps(current, empty, tail - 1, DISSOLVE)
            yield empty.frame, 1
        previous = current
