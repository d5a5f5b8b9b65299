"""The yearly video: a user's POCs of one year as an H.264 MP4 slideshow and a thumbnail.

``render_yearly_video`` draws an intro, one card per POC and an outro with the year's totals
in one of the ``TEMPLATES``, and encodes them with PyAV. Modules: ``model`` (the spec, the
format and durations), ``templates`` (the registry; ``midnight`` and ``paper`` draw),
``text`` (fonts and wrapping), ``paint`` (shared drawing), ``timeline`` (the frame
sequence), ``motion`` (transitions on YUV planes), ``encode`` (conversion and x264
settings), ``render`` (the entry point).
"""

from __future__ import annotations

from pocdojo.media.video.model import (
    CARD_SECONDS,
    FPS,
    HEIGHT,
    INTRO_SECONDS,
    OUTRO_SECONDS,
    THUMBNAIL_SIZE,
    WIDTH,
    VideoPoc,
    VideoResult,
    VideoSpec,
)
from pocdojo.media.video.render import estimate_seconds, render_yearly_video
from pocdojo.media.video.templates import TEMPLATES, Template

__all__ = [
    "CARD_SECONDS",
    "FPS",
    "HEIGHT",
    "INTRO_SECONDS",
    "OUTRO_SECONDS",
    "TEMPLATES",
    "THUMBNAIL_SIZE",
    "WIDTH",
    "Template",
    "VideoPoc",
    "VideoResult",
    "VideoSpec",
    "estimate_seconds",
    "render_yearly_video",
]
