"""Each author's colour, the same as the web app's (``web/src/room/colors.js``, ``userColor``):
the same palette, picked by the same hash of the user id, so a replay shows everyone in the
colour their cursor had in the room."""

from __future__ import annotations

from typing import Final

from pocdojo.media.video.paint import hex_color
from pocdojo.media.video.text import Color

PALETTE: Final = (
    "#1a5fb4",
    "#a51d2d",
    "#26734d",
    "#613583",
    "#8f4400",
    "#0b6e75",
    "#a3006b",
    "#4d5a00",
)


def user_color_hex(user_id: str) -> str:
    """The ``#rrggbb`` colour of ``user_id``, as ``userColor(userId).color`` gives it.

    The hash takes each character's first UTF-16 code unit, as ``charCodeAt(0)`` does for
    each character a JavaScript ``for … of`` loop yields, and wraps at 32 bits, as its
    ``>>> 0`` does.
    """
    hashed = 0
    for char in user_id:
        point = ord(char)
        unit = point if point < 0x10000 else 0xD800 + ((point - 0x10000) >> 10)
        hashed = (hashed * 31 + unit) & 0xFFFFFFFF
    return PALETTE[hashed % len(PALETTE)]


def user_color(user_id: str) -> Color:
    """The colour of ``user_id`` as RGB (see :func:`user_color_hex`)."""
    return hex_color(user_color_hex(user_id))
