"""The replay video of a recorded dojo: the code as it changed, syntax-highlighted, each
author's characters tinted and underlined in their colour, with the recording's voice.

Modules: ``model`` (the spec and format), ``colors`` (authors' colours, as the web app's),
``highlight`` (Pygments colours per character), ``frame`` (drawing the code and the header),
``render`` (the entry point). Encoding and the soundtrack are the yearly video's
(``media.video.encode``).
"""

from __future__ import annotations

from pocdojo.media.replay.colors import PALETTE, user_color, user_color_hex
from pocdojo.media.replay.model import FPS, CodeState, ReplayResult, ReplaySpec
from pocdojo.media.replay.render import estimate_seconds, render_replay_video

__all__ = [
    "FPS",
    "PALETTE",
    "CodeState",
    "ReplayResult",
    "ReplaySpec",
    "estimate_seconds",
    "render_replay_video",
    "user_color",
    "user_color_hex",
]
