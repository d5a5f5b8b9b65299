"""Section tables for the PDF writer: plain-string cells, fixed row height, linear paging.

A 10,000-row table is the expensive part of a detailed report, so tables are drawn here
rather than with platypus ``Table``:

* cells are plain strings, never Paragraphs, so nothing wraps: long text is cut to the column
  width with an ellipsis, and every row has the same height;
* column widths are computed once from measured text;
* ``PagedRows`` splits by arithmetic: with a known row height, the rows that fit a page are a
  division. (Splitting one big ``Table`` re-measures the remaining rows at every page break,
  which is quadratic);
* a page's cells are drawn into one text object. ``Table`` opens one per cell and looks up
  each cell's style, which cost twice as much on a detailed report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable

from pocdojo.jobs.reporting.common import human_cell
from pocdojo.jobs.reporting.model import Column, Section
from pocdojo.jobs.reporting.pdf_fonts import PdfFonts

FONT_SIZE = 7.5
ROW_HEIGHT = 12.0
BASELINE = 3.6  # from the bottom of a row: centres digits and capitals
PADDING = 4.0
MIN_TEXT_WIDTH = 48.0
MIN_NUMBER_WIDTH = 44.0  # keeps a one-row totals table from looking cramped
ELLIPSIS = "\u2026"
HEADER_BACKGROUND = colors.HexColor("#1f3a5f")
ZEBRA = colors.HexColor("#eef2f7")
RULE = colors.HexColor("#9aa8b8")

TextRows = list[list[str]]


@dataclass(frozen=True)
class TableLayout:
    """What every page of one table shares."""

    header: list[str]
    widths: list[float]
    right_aligned: list[bool]
    fonts: PdfFonts
    # Right-aligned cells need their width; numbers repeat, so each is measured once.
    _measured: dict[str, float] = field(default_factory=dict)

    def text_width(self, text: str) -> float:
        """The width of ``text`` in the body font."""
        width = self._measured.get(text)
        if width is None:
            width = self._measured[text] = stringWidth(text, self.fonts.regular, FONT_SIZE)
        return width


class PagedRows(Flowable):  # type: ignore[misc]  # ReportLab ships no type hints
    """A table of equal-height rows whose header repeats on every page it spans."""

    def __init__(self, layout: TableLayout, rows: TextRows, first_row: int = 0) -> None:
        """Args:
        layout: the header, column widths and fonts.
        rows: the body, one list of strings per row.
        first_row: the index of ``rows[0]`` in the whole table, so zebra stripes continue.
        """
        super().__init__()
        self.layout, self.rows, self.first_row = layout, rows, first_row
        self.hAlign = "LEFT"

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        """The whole table's size; the frame calls ``split`` when it is too tall."""
        self.width = sum(self.layout.widths)
        self.height = ROW_HEIGHT * (len(self.rows) + 1)
        return self.width, self.height

    def split(self, avail_width: float, avail_height: float) -> list[PagedRows]:
        """The rows that fit ``avail_height``, and the rest, each as a ``PagedRows``."""
        fit = int(avail_height // ROW_HEIGHT) - 1
        if fit < 1:
            return []  # not even one row under the header: the frame moves on
        if fit >= len(self.rows):
            return [self]
        return [
            PagedRows(self.layout, self.rows[:fit], self.first_row),
            PagedRows(self.layout, self.rows[fit:], self.first_row + fit),
        ]

    def draw(self) -> None:
        """Draw the header and the rows, top down from the flowable's top edge."""
        canvas, layout = self.canv, self.layout
        top = ROW_HEIGHT * len(self.rows)  # the header row's bottom edge
        canvas.saveState()
        canvas.setFillColor(HEADER_BACKGROUND)
        canvas.rect(0, top, self.width, ROW_HEIGHT, stroke=0, fill=1)
        canvas.setFillColor(ZEBRA)
        for k in range(len(self.rows)):
            if (self.first_row + k) % 2:
                canvas.rect(0, top - ROW_HEIGHT * (k + 1), self.width, ROW_HEIGHT, stroke=0, fill=1)
        canvas.setStrokeColor(RULE)
        canvas.setLineWidth(0.5)
        canvas.line(0, 0, self.width, 0)
        text = canvas.beginText()
        text.setFont(layout.fonts.bold, FONT_SIZE)
        text.setFillColor(colors.white)
        self._cells(text, layout.header, top + BASELINE, bold=True)
        text.setFont(layout.fonts.regular, FONT_SIZE)
        text.setFillColor(colors.black)
        for k, row in enumerate(self.rows):
            self._cells(text, row, top - ROW_HEIGHT * (k + 1) + BASELINE)
        canvas.drawText(text)
        canvas.restoreState()

    def _cells(self, text: Any, cells: list[str], baseline: float, bold: bool = False) -> None:
        layout, left = self.layout, 0.0
        for cell, width, right in zip(cells, layout.widths, layout.right_aligned, strict=True):
            if cell:
                if not right:
                    x = left + PADDING
                elif bold:
                    x = left + width - PADDING - stringWidth(cell, layout.fonts.bold, FONT_SIZE)
                else:
                    x = left + width - PADDING - layout.text_width(cell)
                text.setTextOrigin(x, baseline)
                # Not textOut: it measures the string to advance a cursor no cell uses.
                text.textLine(cell)
            left += width


def section_table(section: Section, fonts: PdfFonts, width: float) -> PagedRows:
    """``section`` as a table at most ``width`` points wide (long text is cut to fit)."""
    header = [fonts.clean(c.label) for c in section.columns]
    columns = [
        [fonts.clean(human_cell(row[i], column)) for row in section.rows]
        for i, column in enumerate(section.columns)
    ]
    measured = [
        _measure(texts, c, fonts) for texts, c in zip(columns, section.columns, strict=True)
    ]
    natural = [
        max(
            stringWidth(label, fonts.bold, FONT_SIZE) + 2 * PADDING,
            max(sizes.values(), default=0.0) + 2 * PADDING,
            MIN_NUMBER_WIDTH if column.numeric else 0.0,
        )
        for label, sizes, column in zip(header, measured, section.columns, strict=True)
    ]
    widths = _fit(section.columns, header, natural, fonts, width)
    cutter = _Cutter(fonts.regular)
    for i, sizes in enumerate(measured):
        limit = widths[i] - 2 * PADDING
        if widths[i] < natural[i]:
            columns[i] = [t if sizes[t] <= limit else cutter.cut(t, limit) for t in columns[i]]
    rows = [list(cells) for cells in zip(*columns, strict=True)]
    layout = TableLayout(header, widths, [c.numeric for c in section.columns], fonts)
    return PagedRows(layout, rows)


def _measure(texts: Sequence[str], column: Column, fonts: PdfFonts) -> dict[str, float]:
    """The width of each distinct text (text cells), or of the longest ones (numbers, dates).

    Numbers and dates are digits and a few separators, so the longest strings are the widest;
    measuring only those saves ten thousand calls on a detailed report.
    """
    distinct = set(texts)
    if column.kind != "str" and distinct:
        longest = max(len(t) for t in distinct)
        distinct = {t for t in distinct if len(t) == longest}
    return {t: stringWidth(t, fonts.regular, FONT_SIZE) for t in distinct}


def _fit(
    columns: Sequence[Column],
    header: list[str],
    natural: list[float],
    fonts: PdfFonts,
    available: float,
) -> list[float]:
    """Natural widths if they fit; otherwise text columns share what the others leave them."""
    if sum(natural) <= available:
        return natural
    flexible = {i for i, c in enumerate(columns) if c.kind == "str"}
    fixed = sum(w for i, w in enumerate(natural) if i not in flexible)
    cap = max(_level([natural[i] for i in flexible], available - fixed), MIN_TEXT_WIDTH)
    return [
        min(w, max(cap, stringWidth(header[i], fonts.bold, FONT_SIZE) + 2 * PADDING))
        if i in flexible
        else w
        for i, w in enumerate(natural)
    ]


def _level(widths: Sequence[float], budget: float) -> float:
    """The cap L for which ``sum(min(w, L) for w in widths)`` equals ``budget``."""
    remaining = budget
    ordered = sorted(widths)
    for i, w in enumerate(ordered):
        left = len(ordered) - i
        if w * left > remaining:
            return remaining / left
        remaining -= w
    return ordered[-1] if ordered else budget


class _Cutter:
    """Cuts text to a width with an ellipsis, in one pass over the characters.

    ReportLab's widths add up character by character (it applies no kerning), so a prefix's
    width is a running sum; per-character widths are measured once and kept.
    """

    def __init__(self, font: str) -> None:
        self.font = font
        self.chars: dict[str, float] = {}

    def char_width(self, char: str) -> float:
        width = self.chars.get(char)
        if width is None:
            width = self.chars[char] = stringWidth(char, self.font, FONT_SIZE)
        return width

    def cut(self, text: str, limit: float) -> str:
        """The longest prefix of ``text`` that fits ``limit`` points with an ellipsis."""
        budget = limit - self.char_width(ELLIPSIS)
        used = 0.0
        for i, char in enumerate(text):
            used += self.char_width(char)
            if used > budget:
                return text[:i].rstrip() + ELLIPSIS
        return text
