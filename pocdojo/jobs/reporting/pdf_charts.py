"""Charts for the PDF writer, drawn from a section's chart hint with reportlab.graphics."""

from __future__ import annotations

import math

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

from pocdojo.jobs.reporting.common import human_cell
from pocdojo.jobs.reporting.model import ChartHint, Section
from pocdojo.jobs.reporting.pdf_fonts import PdfFonts

BAR = colors.HexColor("#3b6ea5")
LABEL_SIZE = 7
BAR_HEIGHT = 180.0
ROW_PITCH = 14.0
MAX_LABEL_WIDTH = 180.0


def section_chart(section: Section, fonts: PdfFonts, width: float) -> Drawing | None:
    """The chart ``section.chart`` asks for, ``width`` points wide; None without hint or rows."""
    hint = section.chart
    if hint is None or not section.rows:
        return None
    labels, values = _series(section, hint, fonts)
    if hint.kind == "bar":
        return _vertical(labels, values, fonts, width)
    return _horizontal(labels, values, fonts, width)


def _series(section: Section, hint: ChartHint, fonts: PdfFonts) -> tuple[list[str], list[float]]:
    category, value = section.column_index(hint.category), section.column_index(hint.value)
    rows = section.rows[: hint.limit] if hint.limit else section.rows
    column = section.columns[category]
    labels = [fonts.clean(human_cell(row[category], column)) for row in rows]
    values = [float(v) if isinstance(v, int | float) else 0.0 for v in (r[value] for r in rows)]
    return labels, values


def _scale(values: list[float]) -> tuple[float, float]:
    """A value axis maximum and step in round numbers (1, 2 or 5 times a power of ten)."""
    top = max(values, default=0.0)
    if top <= 0:
        return 1.0, 1.0
    power = 10.0 ** math.floor(math.log10(top / 5))
    step = next(m * power for m in (1, 2, 5, 10) if top / (m * power) <= 5)
    step = max(step, 1.0)  # counts: no half steps
    return math.ceil(top / step) * step, step


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _style_axes(chart: VerticalBarChart | HorizontalBarChart, values: list[float]) -> None:
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax, chart.valueAxis.valueStep = _scale(values)
    chart.valueAxis.labelTextFormat = _count
    chart.bars[0].fillColor = BAR
    chart.bars[0].strokeColor = None
    chart.barLabelFormat = _count
    chart.barLabels.fontSize = LABEL_SIZE - 1


def _fonts(chart: VerticalBarChart | HorizontalBarChart, fonts: PdfFonts) -> None:
    for labels in (chart.categoryAxis.labels, chart.valueAxis.labels, chart.barLabels):
        labels.fontName = fonts.regular
    chart.categoryAxis.labels.fontSize = LABEL_SIZE
    chart.valueAxis.labels.fontSize = LABEL_SIZE


def _vertical(labels: list[str], values: list[float], fonts: PdfFonts, width: float) -> Drawing:
    drawing = Drawing(width, BAR_HEIGHT + 50)
    chart = VerticalBarChart()
    chart.x, chart.y = 40, 40
    chart.width, chart.height = width - 60, BAR_HEIGHT
    chart.data = [values]
    chart.categoryAxis.categoryNames = labels
    if len(labels) > 8:
        chart.categoryAxis.labels.angle = 45
        chart.categoryAxis.labels.boxAnchor = "ne"
    chart.barLabels.nudge = 6
    _style_axes(chart, values)
    _fonts(chart, fonts)
    drawing.add(chart)
    return drawing


def _horizontal(labels: list[str], values: list[float], fonts: PdfFonts, width: float) -> Drawing:
    # The first category is drawn at the bottom: reverse, so the largest bar is on top.
    labels, values = labels[::-1], values[::-1]
    label_width = min(
        max((stringWidth(t, fonts.regular, LABEL_SIZE) for t in labels), default=0.0) + 8,
        MAX_LABEL_WIDTH,
    )
    height = ROW_PITCH * len(labels)
    drawing = Drawing(width, height + 40)
    chart = HorizontalBarChart()
    chart.x, chart.y = label_width + 10, 25
    chart.width, chart.height = min(width - label_width - 40, 420), height
    chart.data = [values]
    chart.categoryAxis.categoryNames = labels
    chart.categoryAxis.labels.boxAnchor = "e"
    chart.barLabels.boxAnchor = "w"
    chart.barLabels.nudge = 8
    _style_axes(chart, values)
    _fonts(chart, fonts)
    drawing.add(chart)
    return drawing
