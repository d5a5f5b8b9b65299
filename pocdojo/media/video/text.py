"""Text for video frames: font lookup with per-character fallback, measuring, wrapping.

Fonts are found by file name in the platform's font folders (Pillow searches them), so no
machine path is ever configured. Each role lists common families in order of preference; when
none is installed the font bundled with Pillow (Latin only) is used, so rendering works on a
bare machine. Characters the main font lacks (CJK, symbols) are drawn with the first installed
fallback font that has them; characters no font has (most emoji) show the main font's
"missing glyph" box rather than failing.

All positions are baselines (``anchor="ls"``): runs drawn with different fonts then line up.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

from PIL import ImageDraw, ImageFont
from PIL.ImageFont import FreeTypeFont

Role = Literal["sans", "sans-bold", "serif", "serif-bold", "mono", "mono-bold"]
Color = tuple[int, int, int]

ELLIPSIS = "…"

_ROLE_FILES: dict[Role, tuple[str, ...]] = {
    "sans": ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "LiberationSans-Regular.ttf", "Arial.ttf"),
    "sans-bold": (
        "DejaVuSans-Bold.ttf",
        "NotoSans-Bold.ttf",
        "LiberationSans-Bold.ttf",
        "Arial Bold.ttf",
        "arialbd.ttf",
    ),
    "serif": (
        "DejaVuSerif.ttf",
        "NotoSerif-Regular.ttf",
        "LiberationSerif-Regular.ttf",
        "Georgia.ttf",
        "georgia.ttf",
    ),
    "serif-bold": (
        "DejaVuSerif-Bold.ttf",
        "NotoSerif-Bold.ttf",
        "LiberationSerif-Bold.ttf",
        "Georgia Bold.ttf",
        "georgiab.ttf",
    ),
    "mono": (
        "DejaVuSansMono.ttf",
        "NotoSansMono-Regular.ttf",
        "LiberationMono-Regular.ttf",
        "Menlo.ttc",
        "consola.ttf",
    ),
    "mono-bold": (
        "DejaVuSansMono-Bold.ttf",
        "NotoSansMono-Bold.ttf",
        "LiberationMono-Bold.ttf",
        "consolab.ttf",
    ),
}

# Wide-coverage fonts tried, in order, for characters the role's font lacks.
_FALLBACK_FILES: tuple[str, ...] = (
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "NotoSansJP-Regular.otf",
    "SourceHanSans-Regular.otc",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
    "DroidSansFallback.ttf",
    "PingFang.ttc",
    "msyh.ttc",
    "NotoSansSymbols2-Regular.ttf",
    "DejaVuSans.ttf",
)

# A private-use code point no text font maps: what the font draws for a missing glyph.
_PROBE = "\U0010fffd"
# Format characters (joiners, bidi marks) and variation selectors: invisible when the layout
# engine understands them, a "missing glyph" box when it does not.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]")
# Markdown syntax that reads as noise once the description is one plain paragraph.
_MARKDOWN = (
    (re.compile(r"```.*?(```|$)", re.DOTALL), " "),  # code blocks say little on a card
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links and images: keep the text
    (re.compile(r"(?m)^\s{0,3}(#{1,6}|>|[-*+]|\d+\.)\s+"), ""),  # headings, quotes, lists
    (re.compile(r"(\*\*|__|`)"), ""),  # bold and inline code markers
)


@functools.cache
def _locate(file_name: str) -> str | None:
    """The path of an installed font file, or None; cached since a miss walks font folders."""
    try:
        font = ImageFont.truetype(file_name, 16)
    except OSError:
        return None
    return str(font.path)


@functools.cache
def _bundled(size: int) -> FreeTypeFont:
    font = ImageFont.load_default(size)
    if not isinstance(font, FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType; video text needs it")
    return font


class Face:
    """One role at one pixel size: a main font plus fallbacks, picked per character."""

    def __init__(self, fonts: Sequence[FreeTypeFont]) -> None:
        """Build a face from fonts in order of preference (the first is the main font)."""
        self.fonts = tuple(fonts)
        self.main = self.fonts[0]
        ascent, descent = self.main.getmetrics()
        self.ascent = ascent
        self.descent = descent
        self._missing = [self._signature(font, _PROBE) for font in self.fonts]
        self._choice: dict[str, int] = {}

    @staticmethod
    def _signature(font: FreeTypeFont, char: str) -> tuple[float, tuple[float, ...]]:
        return font.getlength(char), tuple(font.getbbox(char))

    def _font_index(self, char: str) -> int:
        index = self._choice.get(char)
        if index is None:
            # A glyph drawn exactly like the missing-glyph box is taken as missing; at worst a
            # fallback font draws that character, which is harmless.
            index = next(
                (
                    i
                    for i, font in enumerate(self.fonts)
                    if self._signature(font, char) != self._missing[i]
                ),
                0,
            )
            self._choice[char] = index
        return index

    def runs(self, text: str) -> list[tuple[str, FreeTypeFont]]:
        """Split ``text`` into pieces that one font each can draw."""
        runs: list[tuple[str, FreeTypeFont]] = []
        current: list[str] = []
        current_index = 0
        for char in text:
            # Line and paragraph breaks make the layout engine fail: all text is one line here.
            glyph = " " if char.isspace() else char
            index = current_index if glyph == " " else self._font_index(glyph)
            if current and index != current_index:
                runs.append(("".join(current), self.fonts[current_index]))
                current = []
            current.append(glyph)
            current_index = index
        if current:
            runs.append(("".join(current), self.fonts[current_index]))
        return runs

    def length(self, text: str) -> float:
        """The advance width of ``text`` in pixels."""
        return sum(font.getlength(piece) for piece, font in self.runs(text))

    def draw(
        self, draw: ImageDraw.ImageDraw, x: float, baseline: float, text: str, fill: Color
    ) -> float:
        """Draw ``text`` with its baseline at ``baseline``; returns the x after the text."""
        for piece, font in self.runs(text):
            draw.text((x, baseline), piece, font=font, fill=fill, anchor="ls")
            x += font.getlength(piece)
        return x

    def draw_right(
        self, draw: ImageDraw.ImageDraw, right: float, baseline: float, text: str, fill: Color
    ) -> None:
        """Draw ``text`` so that it ends at ``right``."""
        self.draw(draw, right - self.length(text), baseline, text, fill)

    def draw_centered(
        self, draw: ImageDraw.ImageDraw, center: float, baseline: float, text: str, fill: Color
    ) -> None:
        """Draw ``text`` centred on ``center``."""
        self.draw(draw, center - self.length(text) / 2, baseline, text, fill)


@functools.cache
def face(role: Role, size: int) -> Face:
    """The face for ``role`` at ``size`` pixels (cached: faces are reused across frames)."""
    fonts: list[FreeTypeFont] = []
    main = next((path for name in _ROLE_FILES[role] if (path := _locate(name))), None)
    fonts.append(ImageFont.truetype(main, size) if main else _bundled(size))
    for name in _FALLBACK_FILES:
        path = _locate(name)
        if path and path != main:
            fonts.append(ImageFont.truetype(path, size))
    return Face(fonts)


def fitted(role: Role, sizes: Sequence[int], text: str, width: float) -> Face:
    """The face of the first of ``sizes`` (largest first) at which ``text`` fits ``width``.

    Falls back to the last size; the caller ellipsizes if even that is too wide.
    """
    for size in sizes[:-1]:
        candidate = face(role, size)
        if candidate.length(text) <= width:
            return candidate
    return face(role, sizes[-1])


def clean(text: str) -> str:
    """``text`` on one line: whitespace collapsed, control and invisible characters removed."""
    text = _INVISIBLE.sub("", text)
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    return " ".join(text.split())


def plain(markdown: str) -> str:
    """A description as one line of plain text: Markdown markers dropped, then :func:`clean`."""
    for pattern, replacement in _MARKDOWN:
        markdown = pattern.sub(replacement, markdown)
    return clean(markdown)


def ellipsize(text: str, face: Face, width: float) -> str:
    """``text`` on one line (see :func:`clean`), cut to fit ``width`` with an ellipsis."""
    text = clean(text)
    if face.length(text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # longest prefix that still fits with the ellipsis
        middle = (low + high + 1) // 2
        if face.length(text[:middle].rstrip() + ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    # Cut at a word boundary unless that would waste much of the line.
    space = text.rfind(" ", 0, low + 1)
    if space > low * 0.6 and low < len(text) and not text[low].isspace():
        low = space
    return text[:low].rstrip() + ELLIPSIS


def _fitting_prefix(word: str, face: Face, width: float) -> int:
    """How many leading characters of ``word`` fit in ``width`` (at least one)."""
    low, high = 1, len(word)
    while low < high:
        middle = (low + high + 1) // 2
        if face.length(word[:middle]) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def wrap(text: str, face: Face, width: float, max_lines: int) -> list[str]:
    """Break ``text`` into at most ``max_lines`` lines of ``width`` pixels.

    Lines break between words; a word wider than a line (a URL, or CJK text, which has no
    spaces) breaks between characters. When the text needs more lines, the last line ends
    with an ellipsis.

    Args:
        text: The text; newlines and runs of whitespace count as one space.
        face: The face it is drawn with.
        width: The line width in pixels.
        max_lines: The most lines to return (at least 1).

    Returns:
        The lines, empty for blank text.
    """
    lines: list[str] = []
    current = ""
    for word in clean(text).split(" "):
        if not word:
            continue
        candidate = f"{current} {word}" if current else word
        if face.length(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while face.length(word) > width and len(lines) <= max_lines:
            cut = _fitting_prefix(word, face, width)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
        if len(lines) > max_lines:
            break
    if current:
        lines.append(current)
    if len(lines) <= max_lines:
        return lines
    # The last kept line gets the ellipsis, even if it would have fitted on its own.
    kept = lines[:max_lines]
    kept[-1] = ellipsize(kept[-1] + ELLIPSIS, face, width)
    return kept
