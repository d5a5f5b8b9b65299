"""Each author's colour in the replay video: the web app's (see ``pocdojo.core.colors``), so
everyone shows in the colour their cursor had in the room."""

from __future__ import annotations

from uuid import UUID

from pocdojo.core.colors import PALETTE
from pocdojo.core.colors import user_color as user_color_hex
from pocdojo.media.video.paint import hex_color
from pocdojo.media.video.text import Color

__all__ = ["PALETTE", "user_color", "user_color_hex"]


def user_color(user_id: UUID | str) -> Color:
    """The colour of ``user_id`` as RGB."""
    return hex_color(user_color_hex(user_id))
