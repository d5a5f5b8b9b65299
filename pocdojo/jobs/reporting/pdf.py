"""The PDF writer: a title page, then each section as a heading, its chart and its table.

Pages are A4 landscape, so the detailed table's nine columns fit a row. Every page but the
first carries the report's name and tenant in its footer, and every page its number. Fonts:
see ``pdf_fonts`` (a Unicode TrueType family when one is installed, else Helvetica, with
characters the font cannot draw replaced).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from pocdojo.jobs.reporting.common import REPORT_TITLES, binary_output, request_fields
from pocdojo.jobs.reporting.model import Report, Section
from pocdojo.jobs.reporting.pdf_charts import section_chart
from pocdojo.jobs.reporting.pdf_fonts import PdfFonts, default_fonts
from pocdojo.jobs.reporting.pdf_tables import section_table

PAGE = landscape(A4)
MARGIN = 1.5 * cm
FRAME_WIDTH = PAGE[0] - 2 * MARGIN
INK = colors.HexColor("#1f3a5f")
MUTED = colors.HexColor("#5b6b7d")


def render_pdf(report: Report, out: BinaryIO | Path, *, fonts: PdfFonts | None = None) -> None:
    """Write ``report`` as a PDF.

    Args:
        report: the report to write.
        out: a binary stream, or the path of the file to create.
        fonts: the fonts to use; by default a Unicode family if one is installed.
    """
    fonts = fonts or default_fonts()
    styles = _styles(fonts)
    story = _title_page(report, fonts, styles)
    for section in report.sections:
        story.extend(_section(section, fonts, styles))
    with binary_output(out) as stream:
        doc = _document(stream, report, fonts)
        doc.build(story)


def _document(stream: BinaryIO, report: Report, fonts: PdfFonts) -> BaseDocTemplate:
    title = REPORT_TITLES[report.request.report_type]
    tenant = fonts.clean(report.request.tenant_name)
    footer = f"{title} \u00b7 {tenant}" if tenant else title

    def decorate(canvas: Any, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(fonts.regular, 7)
        canvas.setFillColor(MUTED)
        if doc.page > 1:
            canvas.drawString(MARGIN, MARGIN / 2, footer)
        canvas.drawRightString(PAGE[0] - MARGIN, MARGIN / 2, f"Page {doc.page}")
        canvas.restoreState()

    doc = BaseDocTemplate(
        stream,
        pagesize=PAGE,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"{title} \u2013 {tenant}",
        author="pocdojo",
        subject=f"POCs from {report.request.start} to {report.request.end}",
        creator="pocdojo",
    )
    frame = Frame(MARGIN, MARGIN, FRAME_WIDTH, PAGE[1] - 2 * MARGIN, id="body")
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=decorate)])
    return doc


def _styles(fonts: PdfFonts) -> dict[str, ParagraphStyle]:
    return {
        "title": ParagraphStyle(
            "title", fontName=fonts.bold, fontSize=26, leading=32, textColor=INK
        ),
        "subtitle": ParagraphStyle(
            "subtitle", fontName=fonts.regular, fontSize=14, leading=18, textColor=MUTED
        ),
        "heading": ParagraphStyle(
            "heading",
            fontName=fonts.bold,
            fontSize=13,
            leading=16,
            textColor=INK,
            spaceBefore=10,
            spaceAfter=6,
            keepWithNext=True,
        ),
        "label": ParagraphStyle(
            "label", fontName=fonts.bold, fontSize=11, leading=14, textColor=MUTED
        ),
        "value": ParagraphStyle("value", fontName=fonts.regular, fontSize=11, leading=14),
        "note": ParagraphStyle(
            "note", fontName=fonts.regular, fontSize=8, leading=10, textColor=MUTED
        ),
    }


def _text(value: str, fonts: PdfFonts) -> str:
    """``value`` safe for a Paragraph: drawable characters, markup escaped."""
    return escape(fonts.clean(value))


def _title_page(
    report: Report, fonts: PdfFonts, styles: dict[str, ParagraphStyle]
) -> list[Flowable]:
    request = report.request
    fields = [*request_fields(request), ("POCs in report", f"{report.poc_count:,}")]
    # Values are Paragraphs so that a long tag list or tenant name wraps inside the page.
    rows = [
        [Paragraph(escape(label), styles["label"]), Paragraph(_text(value, fonts), styles["value"])]
        for label, value in fields
    ]
    table = Table(rows, colWidths=[4.5 * cm, FRAME_WIDTH - 4.5 * cm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d5dbe3")),
            ]
        )
    )
    return [
        Spacer(1, 3 * cm),
        Paragraph(escape(REPORT_TITLES[request.report_type]), styles["title"]),
        Paragraph(_text(request.tenant_name or "POC report", fonts), styles["subtitle"]),
        Spacer(1, 1.2 * cm),
        table,
        PageBreak(),
    ]


def _section(section: Section, fonts: PdfFonts, styles: dict[str, ParagraphStyle]) -> list[Any]:
    # A heading needs its chart or a few table rows under it on the same page.
    parts: list[Any] = [CondPageBreak(4 * cm), Paragraph(escape(section.title), styles["heading"])]
    chart = section_chart(section, fonts, FRAME_WIDTH)
    if chart is not None:
        parts.extend([chart, Spacer(1, 8)])
    parts.append(section_table(section, fonts, FRAME_WIDTH))
    if not section.rows:
        parts.append(Paragraph("No POCs in this period.", styles["note"]))
    return parts
