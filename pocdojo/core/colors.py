"""Each user's colour, from their id: the web app's ``userColor`` (web/src/room/colors.js),
so an author has the same colour in the editor, the replay player and the replay video."""

from __future__ import annotations

from uuid import UUID

PALETTE = ("#1a5fb4", "#a51d2d", "#26734d", "#613583", "#8f4400", "#0b6e75", "#a3006b", "#4d5a00")


def user_color(user_id: UUID | str) -> str:
    """``#rrggbb``, dark enough for white text on it.

    The same hash as the web app's: each character's first UTF-16 code unit (what
    ``charCodeAt(0)`` gives for each character a JavaScript ``for … of`` loop yields),
    wrapping at 32 bits as its ``>>> 0`` does.
    """
    digest = 0
    for ch in str(user_id):
        point = ord(ch)
        unit = point if point < 0x10000 else 0xD800 + ((point - 0x10000) >> 10)
        digest = (digest * 31 + unit) & 0xFFFFFFFF
    return PALETTE[digest % len(PALETTE)]
