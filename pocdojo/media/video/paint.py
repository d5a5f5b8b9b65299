"""Drawing helpers the templates share: colours, backgrounds, labels, tag rows."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from PIL import Image, ImageDraw, ImageFilter

from pocdojo.media.video.model import HEIGHT, WIDTH
from pocdojo.media.video.text import Color, Face

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def hex_color(value: str) -> Color:
    """``"#RRGGBB"`` as an RGB tuple."""
    return (int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16))


def mix(a: Color, b: Color, amount: float) -> Color:
    """The colour ``amount`` (0..1) of the way from ``a`` to ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * amount),
        round(a[1] + (b[1] - a[1]) * amount),
        round(a[2] + (b[2] - a[2]) * amount),
    )


def pick(palette: Sequence[Color], key: str) -> Color:
    """A colour from ``palette`` that depends only on ``key`` (stable across processes)."""
    return palette[zlib.crc32(key.casefold().encode()) % len(palette)]


def vertical_gradient(top: Color, bottom: Color) -> Image.Image:
    """A full frame fading from ``top`` to ``bottom``."""
    column = Image.new("RGB", (1, HEIGHT))
    column.putdata([mix(top, bottom, y / (HEIGHT - 1)) for y in range(HEIGHT)])
    return column.resize((WIDTH, HEIGHT), Image.Resampling.NEAREST)


def glow(
    base: Image.Image, color: Color, center: tuple[float, float], radius: float
) -> Image.Image:
    """``base`` lit by a soft round light of ``color``.

    Drawn at 1/8 scale and enlarged: blurring a full frame costs far more and the light has
    no detail to lose.
    """
    scale = 8
    small = (WIDTH // scale, HEIGHT // scale)
    mask = Image.new("L", small, 0)
    cx, cy, r = center[0] / scale, center[1] / scale, radius / scale
    ImageDraw.Draw(mask).ellipse((cx - r, cy - r, cx + r, cy + r), fill=110)
    mask = mask.filter(ImageFilter.GaussianBlur(r / 2)).resize(
        (WIDTH, HEIGHT), Image.Resampling.BICUBIC
    )
    return Image.composite(Image.new("RGB", (WIDTH, HEIGHT), color), base, mask)


def short_date(moment: datetime) -> str:
    """``14 Mar 2025``, the same in every locale."""
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def compact_number(value: int) -> str:
    """``950``, ``9,500``, ``95.0k``, ``9.5M``, ``9.5B``: short enough for a big label."""
    if value < 0:
        return "-" + compact_number(-value)
    if value < 100_000:
        return f"{value:,}"
    for scale, suffix in ((1e3, "k"), (1e6, "M")):
        scaled = round(value / scale, 1)
        if scaled < 1000:  # checked after rounding, so 999,999 reads 1.0M, not 1,000.0k
            return f"{scaled:.1f}{suffix}"
    return f"{value / 1e9:,.1f}B"


def plural(count: int, one: str, many: str) -> str:
    """``1 POC``, ``2 POCs``."""
    return f"{count:,} {one if count == 1 else many}"


@dataclass(frozen=True)
class Flow:
    """Labels laid out in rows, as many as fit.

    Attributes:
        rows: Each row's labels with their x offsets.
        hidden: How many labels did not fit (shown as a "+N" label at the end).
    """

    rows: tuple[tuple[tuple[str, float], ...], ...]
    hidden: int


def flow(
    labels: Sequence[str],
    measure: Callable[[str], float],
    width: float,
    max_rows: int,
    gap: float,
) -> Flow:
    """Lay ``labels`` out left to right in up to ``max_rows`` rows of ``width``.

    When some do not fit, the last row keeps room for a ``+N`` label counting them.

    Args:
        labels: The labels in order; each must already fit ``width`` on its own.
        measure: The drawn width of one label (padding included).
        width: The row width.
        max_rows: The most rows.
        gap: Space between labels.

    Returns:
        The rows and how many labels were left out.
    """
    rows: list[list[tuple[str, float]]] = [[]]
    x = 0.0
    placed = 0
    for label in labels:
        size = measure(label)
        if rows[-1] and x + size > width:
            if len(rows) == max_rows:
                break
            rows.append([])
            x = 0.0
        rows[-1].append((label, x))
        x += size + gap
        placed += 1
    while placed < len(labels):
        row = rows[-1]
        more = f"+{len(labels) - placed}"
        start = row[-1][1] + measure(row[-1][0]) + gap if row else 0.0
        if not row or start + measure(more) <= width:
            row.append((more, start))
            break
        row.pop()
        placed -= 1
    return Flow(rows=tuple(tuple(row) for row in rows if row), hidden=len(labels) - placed)


def text_lines(
    draw: ImageDraw.ImageDraw,
    face: Face,
    lines: Sequence[str],
    x: float,
    baseline: float,
    step: float,
    fill: Color,
) -> float:
    """Draw ``lines`` ``step`` pixels apart from ``baseline``; returns the last baseline."""
    for number, line in enumerate(lines):
        face.draw(draw, x, baseline + number * step, line, fill)
    return baseline + (len(lines) - 1) * step if lines else baseline - step


@dataclass(frozen=True)
class PillStyle:
    """How a pill-shaped label looks.

    Attributes:
        face: The label's face.
        height: The pill's height.
        padding: Space left and right of the text.
        text: The text colour.
        fill: The inside colour, or None for none.
        outline: The border colour, or None for none.
    """

    face: Face
    height: int
    padding: int
    text: Color
    fill: Color | None = None
    outline: Color | None = None

    def width(self, label: str) -> float:
        """The pill's width for ``label``."""
        return self.face.length(label) + 2 * self.padding

    def draw(self, draw: ImageDraw.ImageDraw, x: float, top: float, label: str) -> float:
        """Draw a pill at (``x``, ``top``); returns its width."""
        width = self.width(label)
        draw.rounded_rectangle(
            (x, top, x + width, top + self.height),
            radius=self.height // 2,
            fill=self.fill,
            outline=self.outline,
            width=2,
        )
        baseline = top + (self.height + self.face.ascent - self.face.descent) / 2
        self.face.draw(draw, x + self.padding, baseline, label, self.text)
        return width
