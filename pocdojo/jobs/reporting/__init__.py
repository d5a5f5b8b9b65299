"""POC reports: aggregation (``model``) and one writer per format.

``build_report`` turns filtered POC rows into a ``Report``; ``RENDERERS[fmt](report, out)``
writes it, where ``fmt`` is a format of the report API (``pdf``, ``xlsx``, ``csv``, ``json``)
and ``out`` a binary stream or a path. ``CONTENT_TYPES`` and ``EXTENSIONS`` (without the
dot) describe the files. Nothing here touches the database or the network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Literal

from pocdojo.jobs.reporting.model import (
    ChartHint,
    Column,
    Report,
    ReportPoc,
    ReportRequest,
    Section,
    build_report,
)
from pocdojo.jobs.reporting.pdf import render_pdf
from pocdojo.jobs.reporting.tabular import render_csv, render_json
from pocdojo.jobs.reporting.xlsx import render_xlsx

ReportFormat = Literal["pdf", "xlsx", "csv", "json"]
Renderer = Callable[[Report, BinaryIO | Path], None]

RENDERERS: dict[str, Renderer] = {
    "pdf": render_pdf,
    "xlsx": render_xlsx,
    "csv": render_csv,
    "json": render_json,
}
CONTENT_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}
EXTENSIONS: dict[str, str] = {"pdf": "pdf", "xlsx": "xlsx", "csv": "csv", "json": "json"}
FORMATS: tuple[ReportFormat, ...] = ("pdf", "xlsx", "csv", "json")

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FORMATS",
    "RENDERERS",
    "ChartHint",
    "Column",
    "Renderer",
    "Report",
    "ReportFormat",
    "ReportPoc",
    "ReportRequest",
    "Section",
    "build_report",
    "render_csv",
    "render_json",
    "render_pdf",
    "render_xlsx",
]
