"""Fonts for the PDF writer, and text made safe for them.

ReportLab's 14 standard fonts only encode Windows-1252, so a POC titled in Greek, Cyrillic or
Polish would print as black boxes. The first time a PDF is written we look for a Unicode
TrueType family (DejaVu Sans, Noto Sans, Liberation Sans, FreeSans) by file name on
ReportLab's own font search path (``reportlab.rl_config.TTFSearchPath``: the usual system font
folders), and embed it when found. Otherwise the standard Helvetica is used.

Either way, characters the chosen font has no glyph for (CJK or emoji with DejaVu; anything
outside Windows-1252 with Helvetica) become ``?``, and control characters become spaces:
a missing glyph would otherwise print as a box or an invisible NUL, and a line break would
break the fixed row height the table layout relies on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

# (regular, bold) file names, best coverage first.
UNICODE_FAMILIES: tuple[tuple[str, str], ...] = (
    ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),
    ("LiberationSans-Regular.ttf", "LiberationSans-Bold.ttf"),
    ("FreeSans.ttf", "FreeSansBold.ttf"),
)
_REPLACEMENT = "?"


@dataclass(frozen=True)
class PdfFonts:
    """A regular and a bold font name, registered with ReportLab, and what they can draw.

    ``glyphs`` holds the code points both fonts have; None means the standard fonts, which
    draw what Windows-1252 encodes.
    """

    regular: str
    bold: str
    glyphs: frozenset[int] | None = None

    @classmethod
    def standard(cls) -> PdfFonts:
        """Helvetica: always available, Windows-1252 only."""
        return cls("Helvetica", "Helvetica-Bold")

    def clean(self, text: str) -> str:
        """``text`` with every character these fonts cannot draw replaced."""
        if text.isascii() and text.isprintable():
            return text
        return "".join(self._safe(c) for c in text)

    def _safe(self, char: str) -> str:
        if not char.isprintable():
            return " "
        if self.glyphs is not None:
            return char if ord(char) in self.glyphs else _REPLACEMENT
        try:
            char.encode("cp1252")
        except UnicodeEncodeError:
            return _REPLACEMENT
        return char


_lock = threading.Lock()
_resolved: PdfFonts | None = None


def default_fonts() -> PdfFonts:
    """The Unicode family found first on ReportLab's search path, else Helvetica.

    Looked up once per process; later calls return the same fonts.
    """
    global _resolved
    with _lock:
        if _resolved is None:
            _resolved = find_fonts(UNICODE_FAMILIES) or PdfFonts.standard()
        return _resolved


def find_fonts(families: tuple[tuple[str, str], ...]) -> PdfFonts | None:
    """Register the first of ``families`` whose regular file is found; None if none is.

    A family without its bold file uses the regular face for bold text.
    """
    for regular_file, bold_file in families:
        regular = _load(regular_file)
        if regular is None:
            continue
        bold = _load(bold_file) or regular
        for font in {regular, bold}:
            pdfmetrics.registerFont(font)
        glyphs = frozenset(regular.face.charToGlyph).intersection(bold.face.charToGlyph)
        return PdfFonts(regular.fontName, bold.fontName, glyphs)
    return None


def _load(file_name: str) -> TTFont | None:
    name = "pocdojo-" + file_name.rsplit(".", 1)[0]
    try:
        return TTFont(name, file_name)
    except (TTFError, OSError):
        return None
