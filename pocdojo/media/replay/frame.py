"""Drawing a replay's frames: the code with its syntax colours and each author's tint and
underline, scrolled to keep the last edit in sight, under a header with the session's title,
the elapsed time and a legend of the authors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from PIL import Image, ImageDraw

from pocdojo.media.replay.colors import user_color
from pocdojo.media.replay.highlight import BACKGROUND, colors, lexer_for
from pocdojo.media.replay.model import HEIGHT, WIDTH, CodeState, ReplaySpec
from pocdojo.media.video.paint import mix
from pocdojo.media.video.text import Color, ellipsize, face

HEADER: Final = 104
MARGIN: Final = 24
CODE_SIZE: Final = 18
LINE_HEIGHT: Final = 26
GUTTER: Final = 64  # line numbers
TAB: Final = 4
# Lines kept in sight above and below the last edit when scrolling; columns kept in sight
# left and right of it when a long line scrolls the view sideways.
CONTEXT_LINES: Final = 3
CONTEXT_COLUMNS: Final = 8
# How much of the author's colour tints the background behind their characters (the web
# app's selections use a fifth of it).
TINT: Final = 0.2
UNDERLINE: Final = 3
MORE: Final = "\u203a"  # a single right-pointing angle quotation mark, at a line cut short

_HEADER_BG: Final = (0x24, 0x29, 0x2F)
_HEADER_FG: Final = (0xFF, 0xFF, 0xFF)
_HEADER_DIM: Final = (0xB0, 0xB8, 0xC0)
_GUTTER_FG: Final = (0x8C, 0x95, 0x9F)
_EDITED_LINE: Final = (0xFF, 0xF5, 0xC8)
_CODE_TOP: Final = HEADER + 14
VISIBLE_LINES: Final = (HEIGHT - _CODE_TOP - 8) // LINE_HEIGHT
_CODE_X: Final = MARGIN + GUTTER

Cell = tuple[str, Color, str | None]


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _lines(state: CodeState, syntax: Sequence[Color]) -> list[list[Cell]]:
    """The code as lines of cells (character, colour, author), tabs expanded."""
    lines: list[list[Cell]] = [[]]
    for char, color, author in zip(state.code, syntax, state.authors, strict=True):
        if char in "\n\r":
            lines.append([])
        elif char == "\t":
            line = lines[-1]
            line.extend([(" ", color, author)] * (TAB - len(line) % TAB))
        else:
            lines[-1].append((char, color, author))
    return lines


def _column(code: str, offset: int) -> int:
    """The column (tabs expanded, as ``_lines`` does) of the character at ``offset``."""
    column = 0
    for char in code[code.rfind("\n", 0, offset) + 1 : offset]:
        if char == "\r":
            continue
        column += TAB - column % TAB if char == "\t" else 1
    return column


def _runs(cells: Sequence[Cell]) -> list[tuple[int, str, Color, str | None]]:
    """Cells grouped into runs of one colour and one author: (first column, text, …)."""
    runs: list[tuple[int, str, Color, str | None]] = []
    start = 0
    for column in range(1, len(cells) + 1):
        if column == len(cells) or cells[column][1:] != cells[start][1:]:
            text = "".join(cell[0] for cell in cells[start:column])
            runs.append((start, text, cells[start][1], cells[start][2]))
            start = column
    return runs


class CodeView:
    """Draws the code area, remembering where it is scrolled to between states."""

    def __init__(self, spec: ReplaySpec) -> None:
        """Prepare the lexer and fonts for ``spec``'s code."""
        self._lexer = lexer_for(spec.language)
        self._face = face("mono", CODE_SIZE)
        self._gutter_face = face("mono", CODE_SIZE - 4)
        self._advance = self._face.length("M")
        self._columns = int((WIDTH - _CODE_X - MARGIN) // self._advance)
        self.top = 0  # the first line in sight
        self.left = 0  # the first column in sight (long lines scroll the view sideways)

    def cell(self, line: int, column: int) -> tuple[int, int, int, int] | None:
        """Where the character at ``line`` and ``column`` (of the tab-expanded text, both from
        0) was drawn last, as (left, top, right, bottom); None when out of sight."""
        row, shown = line - self.top, column - self.left
        if not 0 <= row < VISIBLE_LINES or not 0 <= shown < self._columns:
            return None
        left = _CODE_X + shown * self._advance
        top = _CODE_TOP + row * LINE_HEIGHT
        return round(left), top, round(left + self._advance) - 1, top + LINE_HEIGHT - 1

    def _scroll(self, edited_line: int, line_count: int) -> None:
        low = edited_line - CONTEXT_LINES
        high = edited_line + CONTEXT_LINES - VISIBLE_LINES + 1
        self.top = min(max(self.top, high), low)
        # Lines deleted at the end: scroll back up, as far as the edit stays in sight.
        self.top = max(0, min(self.top, max(line_count - VISIBLE_LINES, high)))

    def _scroll_sideways(self, edited_column: int) -> None:
        """As an editor does: either way, only as far as keeps the edit's column in sight with
        ``CONTEXT_COLUMNS`` around it (so back to the start for an edit near a line's start)."""
        low = edited_column + CONTEXT_COLUMNS - self._columns + 1
        high = max(0, edited_column - CONTEXT_COLUMNS)
        self.left = max(0, min(max(self.left, low), high))

    def draw(self, state: CodeState) -> Image.Image:
        """A whole frame with ``state``'s code (the header left blank for :func:`header`)."""
        lines = _lines(state, colors(self._lexer, state.code))
        edited = max(0, min(state.edited, len(state.code)))
        edited_line = state.code.count("\n", 0, edited)
        self._scroll(edited_line, len(lines))
        self._scroll_sideways(_column(state.code, edited))
        image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
        draw = ImageDraw.Draw(image)
        baseline_offset = (LINE_HEIGHT + self._face.ascent - self._face.descent) // 2
        for row, number in enumerate(range(self.top, min(len(lines), self.top + VISIBLE_LINES))):
            y = _CODE_TOP + row * LINE_HEIGHT
            if number == edited_line:
                draw.rectangle((0, y, WIDTH, y + LINE_HEIGHT - 1), fill=_EDITED_LINE)
            self._gutter_face.draw_right(
                draw, _CODE_X - 16, y + baseline_offset, str(number + 1), _GUTTER_FG
            )
            line = lines[number]
            self._line(draw, line[self.left : self.left + self._columns], y, y + baseline_offset)
            if len(line) > self.left + self._columns:  # it goes on past the right edge
                self._gutter_face.draw(
                    draw, WIDTH - MARGIN + 6, y + baseline_offset, MORE, _GUTTER_FG
                )
        if not state.code:
            self._face.draw(draw, _CODE_X, _CODE_TOP + baseline_offset, "…", _GUTTER_FG)
        return image

    def _line(
        self, draw: ImageDraw.ImageDraw, cells: Sequence[Cell], y: int, baseline: int
    ) -> None:
        runs = _runs(cells)
        for column, text, _, author in runs:
            if author is None:
                continue
            left = _CODE_X + column * self._advance
            right = left + len(text) * self._advance
            color = user_color(author)
            bottom = y + LINE_HEIGHT - 2
            draw.rectangle((left, y + 1, right - 1, bottom), fill=mix(BACKGROUND, color, TINT))
            draw.rectangle((left, bottom - UNDERLINE + 1, right - 1, bottom), fill=color)
        for column, text, color, _ in runs:
            if text.strip():
                self._face.draw(draw, _CODE_X + column * self._advance, baseline, text, color)


def header(frame: Image.Image, spec: ReplaySpec, seconds: float) -> Image.Image:
    """``frame`` with the header drawn over its top: title, elapsed time, legend."""
    image = frame.copy()
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, HEADER - 1), fill=_HEADER_BG)
    time_face = face("mono", 22)
    elapsed = f"{clock(seconds)} / {clock(spec.duration)}"
    time_width = time_face.length(elapsed)
    time_face.draw_right(draw, WIDTH - MARGIN, 42, elapsed, _HEADER_DIM)
    title_face = face("sans-bold", 26)
    title = ellipsize(spec.title, title_face, WIDTH - 3 * MARGIN - time_width)
    title_face.draw(draw, MARGIN, 42, title, _HEADER_FG)
    _legend(draw, spec)
    return image


def _legend(draw: ImageDraw.ImageDraw, spec: ReplaySpec) -> None:
    """Each author's name on a chip of their colour, as long as the chips fit."""
    name_face = face("sans", 16)
    x, top, bottom = float(MARGIN), 62, 88
    names = list(spec.authors.items())
    for index, (key, name) in enumerate(names):
        label = ellipsize(name, name_face, 240)
        width = name_face.length(label) + 20
        more = f"+{len(names) - index}"
        if x + width > WIDTH - MARGIN - name_face.length(more) - 20:
            name_face.draw(draw, x, 80, more, _HEADER_DIM)
            return
        draw.rounded_rectangle((x, top, x + width, bottom), radius=6, fill=user_color(key))
        name_face.draw(draw, x + 10, 80, label, _HEADER_FG)
        x += width + 10
