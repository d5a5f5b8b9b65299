"""The "default" template: dark, bold sans-serif, one glowing colour per language.

Cards put the title big on the left, a language chip and the description under it, tags as
outlined pills at the bottom and, with metrics, a panel of two large numbers on the right.
Segments dissolve into each other.
"""

from __future__ import annotations

import functools

from PIL import Image, ImageDraw

from pocdojo.media.video import paint
from pocdojo.media.video.model import HEIGHT, WIDTH, VideoSpec, YearTotals
from pocdojo.media.video.motion import DISSOLVE
from pocdojo.media.video.paint import PillStyle, compact_number, hex_color, plural
from pocdojo.media.video.text import ellipsize, face, fitted, plain, wrap

_TOP = hex_color("#0B1020")
_BOTTOM = hex_color("#1B2150")
_TEXT = hex_color("#F5F7FF")
_BODY = hex_color("#C9CEEA")
_MUTED = hex_color("#8E97C2")
_FAINT = hex_color("#394176")
_PANEL = hex_color("#1D2456")
_ACCENT = hex_color("#8B6CFF")
_LANGUAGE_COLORS = tuple(
    hex_color(value)
    for value in (
        "#FF6B6B", "#FFB84C", "#F9E26B", "#6BCB77", "#4D96FF",
        "#B38CFF", "#F15BB5", "#00BBF9", "#00E0C0", "#FF924C",
    )
)  # fmt: skip

_LEFT = 96
_RIGHT = WIDTH - 96
_PANEL_LEFT = 900


@functools.cache
def _background(accent: tuple[int, int, int] | None) -> Image.Image:
    base = paint.vertical_gradient(_TOP, _BOTTOM)
    return base if accent is None else paint.glow(base, accent, (WIDTH - 150, 90), 430)


class Midnight:
    """Dark template; see the module docstring."""

    name = "default"
    label = "Midnight"
    transition = DISSOLVE

    def blank(self) -> Image.Image:
        """The bare background: the first and last frame of the video."""
        return _background(None)

    def intro(self, spec: VideoSpec) -> Image.Image:
        """Year, owner and company."""
        image = _background(_ACCENT).copy()
        draw = ImageDraw.Draw(image)
        face("sans-bold", 26).draw(draw, _LEFT, 200, "YEAR IN REVIEW", _ACCENT)
        face("sans-bold", 190).draw(draw, _LEFT - 8, 392, str(spec.year), _TEXT)
        name = face("sans-bold", 54)
        name.draw(draw, _LEFT, 482, ellipsize(spec.owner_name, name, _RIGHT - _LEFT), _TEXT)
        company = face("sans", 32)
        company.draw(draw, _LEFT, 534, ellipsize(spec.company, company, _RIGHT - _LEFT), _MUTED)
        draw.ellipse((_LEFT, 622, _LEFT + 14, 636), fill=_ACCENT)
        count = plural(len(spec.pocs), "proof of concept", "proofs of concept")
        face("sans", 28).draw(draw, _LEFT + 30, 638, count, _BODY)
        return image

    def card(self, spec: VideoSpec, index: int) -> Image.Image:
        """One POC: title, language, date, description, tags and (optionally) metrics."""
        poc = spec.pocs[index]
        color = paint.pick(_LANGUAGE_COLORS, poc.language)
        image = _background(color).copy()
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, 11, HEIGHT), fill=color)
        kicker = face("sans-bold", 22)
        kicker.draw(draw, _LEFT, 110, f"POC {index + 1} OF {len(spec.pocs)}", _MUTED)
        face("sans", 24).draw_right(draw, _RIGHT, 110, paint.short_date(poc.created_at), _MUTED)

        title_face = face("sans-bold", 58)
        title = wrap(poc.title, title_face, _RIGHT - _LEFT, 2) or ["Untitled"]
        y = paint.text_lines(draw, title_face, title, _LEFT, 196, 70, _TEXT)

        chip = PillStyle(face("sans-bold", 24), 44, 18, _TOP, fill=color)
        chip.draw(draw, _LEFT, y + 34, ellipsize(poc.language or "-", chip.face, 600))

        text_right = _PANEL_LEFT - 48 if spec.include_metrics else _RIGHT
        body = face("sans", 28)
        lines = wrap(plain(poc.description), body, text_right - _LEFT, 4 if len(title) == 1 else 3)
        paint.text_lines(draw, body, lines, _LEFT, y + 130, 40, _BODY)

        self._tags(draw, poc.tags)
        if spec.include_metrics:
            self._metrics(draw, poc.views, poc.favorites, y + 34)
        done = round(WIDTH * (index + 1) / len(spec.pocs))
        draw.rectangle((0, HEIGHT - 6, WIDTH, HEIGHT), fill=_FAINT)
        draw.rectangle((0, HEIGHT - 6, done, HEIGHT), fill=color)
        return image

    def _tags(self, draw: ImageDraw.ImageDraw, tags: tuple[str, ...]) -> None:
        style = PillStyle(face("sans", 22), 40, 16, _BODY, outline=_FAINT)
        labels = [ellipsize(tag, style.face, 320) for tag in tags if tag.strip()]
        layout = paint.flow(labels, style.width, _RIGHT - _LEFT, 2, 12)
        top = HEIGHT - 70 - 52 * len(layout.rows)
        for number, row in enumerate(layout.rows):
            for label, x in row:
                style.draw(draw, _LEFT + x, top + number * 52, label)

    def _metrics(self, draw: ImageDraw.ImageDraw, views: int, favorites: int, top: float) -> None:
        # 236 px tall: clear of two rows of tags even under a two-line title.
        draw.rounded_rectangle((_PANEL_LEFT, top, _RIGHT, top + 236), radius=24, fill=_PANEL)
        caption = face("sans-bold", 20)
        for offset, value, label in ((0, views, "VIEWS"), (100, favorites, "FAVORITES")):
            text = compact_number(value)
            number = fitted("sans-bold", (64, 56, 48), text, _RIGHT - _PANEL_LEFT - 56)
            number.draw(draw, _PANEL_LEFT + 32, top + 82 + offset, text, _TEXT)
            caption.draw(draw, _PANEL_LEFT + 34, top + 110 + offset, label, _MUTED)

    def outro(self, spec: VideoSpec, totals: YearTotals) -> Image.Image:
        """The year's totals."""
        image = _background(_ACCENT).copy()
        draw = ImageDraw.Draw(image)
        face("sans-bold", 48).draw(draw, _LEFT, 130, f"{spec.year} in numbers", _TEXT)
        stats = [(totals.pocs, "POCS"), (len(totals.languages), "LANGUAGES")]
        if spec.include_metrics:
            stats += [(totals.views, "VIEWS"), (totals.favorites, "FAVORITES")]
        self._tiles(draw, stats)

        caption, body = face("sans-bold", 20), face("sans", 30)
        caption.draw(draw, _LEFT, 420, "TOP TAGS", _MUTED)
        style = PillStyle(face("sans", 24), 44, 18, _TEXT, fill=_PANEL)
        labels = [ellipsize(tag, style.face, 300) for tag in totals.top_tags]
        for label, x in next(iter(paint.flow(labels, style.width, _RIGHT - _LEFT, 1, 12).rows), ()):
            style.draw(draw, _LEFT + x, 438, label)
        if not labels:
            body.draw(draw, _LEFT, 472, "-", _BODY)

        caption.draw(draw, _LEFT, 540, "LANGUAGES", _MUTED)
        languages = "  ·  ".join(totals.languages) or "-"
        body.draw(draw, _LEFT, 584, ellipsize(languages, body, _RIGHT - _LEFT), _BODY)
        if spec.include_metrics:
            most = face("sans", 26)
            text = ellipsize(f"Most viewed: {totals.most_viewed}", most, _RIGHT - _LEFT)
            most.draw(draw, _LEFT, 648, text, _MUTED)
        return image

    def _tiles(self, draw: ImageDraw.ImageDraw, stats: list[tuple[int, str]]) -> None:
        gap = 24
        width = (_RIGHT - _LEFT - gap * (len(stats) - 1)) / len(stats)
        caption = face("sans-bold", 20)
        for position, (value, label) in enumerate(stats):
            left = _LEFT + position * (width + gap)
            draw.rounded_rectangle((left, 180, left + width, 360), radius=24, fill=_PANEL)
            text = compact_number(value)
            number = fitted("sans-bold", (72, 60, 50, 42), text, width - 56)
            number.draw(draw, left + 28, 290, ellipsize(text, number, width - 56), _TEXT)
            caption.draw(draw, left + 30, 330, label, _MUTED)
