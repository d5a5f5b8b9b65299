"""What a replay video shows, and its fixed format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pocdojo.media.video.model import HEIGHT, THUMBNAIL_SIZE, WIDTH

# Code changes at typing speed: a tenth of a second is smooth enough, and a tenth of the
# frames of the yearly video's rate to render.
FPS: Final = 10

__all__ = ["FPS", "HEIGHT", "THUMBNAIL_SIZE", "WIDTH", "CodeState", "ReplayResult", "ReplaySpec"]


@dataclass(frozen=True)
class CodeState:
    """The code from ``t`` seconds on, until the next state.

    Attributes:
        t: Seconds from the recording's start.
        code: The whole code.
        authors: One entry per character of ``code``: the key of ``ReplaySpec.authors`` of
            who wrote it, None when unknown.
        edited: The character index of the last change (the view keeps its line in sight).
    """

    t: float
    code: str
    authors: Sequence[str | None]
    edited: int


@dataclass(frozen=True)
class ReplaySpec:
    """Everything a replay video shows besides the code.

    Attributes:
        title: The session's title, in the header.
        language: The session's language, which picks the syntax highlighting (None, or a
            language Pygments does not know: plain text).
        duration: Seconds of video (the recording's).
        authors: Each author's key (a user id, which also picks their colour) to the name
            the legend shows, in the legend's order.
    """

    title: str
    language: str | None
    duration: float
    authors: Mapping[str, str]


@dataclass(frozen=True)
class ReplayResult:
    """What was rendered: the video's length, frames, and how many of them were drawn."""

    duration_seconds: float
    frames: int
    drawn: int
