"""Syntax colours for the code, per character, from Pygments on a light theme."""

from __future__ import annotations

import functools
from typing import Final

from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.style import Style
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound

from pocdojo.media.video.paint import hex_color
from pocdojo.media.video.text import Color

STYLE: Final = "default"
# The POC languages Pygments knows under another name.
_ALIASES: Final = {"assembly": "nasm"}

_style: type[Style] = get_style_by_name(STYLE)
BACKGROUND: Final = hex_color(_style.background_color)
FOREGROUND: Final = (0x1F, 0x23, 0x28)


def lexer_for(language: str | None) -> Lexer:
    """The lexer of ``language`` (a POC language's name), plain text when there is none.

    The lexer leaves the text as given (no newline added or stripped, tabs kept), so its
    tokens line up with the characters.
    """
    options = {"stripnl": False, "stripall": False, "ensurenl": False, "tabsize": 0}
    if language:
        name = language.strip().casefold()
        try:
            lexer: Lexer = get_lexer_by_name(_ALIASES.get(name, name), **options)
            return lexer
        except ClassNotFound:
            pass
    return TextLexer(**options)


@functools.cache
def _token_color(token: _TokenType) -> Color:
    color = _style.style_for_token(token)["color"]
    return hex_color(f"#{color}") if color else FOREGROUND


def colors(lexer: Lexer, code: str) -> list[Color]:
    """The syntax colour of each character of ``code``.

    Pygments turns carriage returns into newlines; a lexer that still drifts from the text
    leaves the rest in the plain foreground colour rather than misplacing colours.
    """
    out: list[Color] = []
    for _, token, value in lexer.get_tokens_unprocessed(code.replace("\r", "\n")):
        out.extend([_token_color(token)] * len(value))
    if len(out) != len(code):
        del out[len(code) :]
        out.extend([FOREGROUND] * (len(code) - len(out)))
    return out
