"""The CSV and JSON writers (UTF-8, no byte order mark).

CSV puts every section in one file, one after another, each opened by a row of one cell
``# <section name>`` and then its header row of column names; a blank line ends a section::

    # report
    field,value
    reportType,summary
    ...

    # totals
    pocs,active,archived,owners,views,favorites
    120,97,23,6,50123,4012

The first block, ``# report``, holds the parameters as ``field,value`` rows. Every line
parses with ``csv.reader``. Numbers are written as numbers, dates as ``YYYY-MM-DD``, times as
ISO 8601 in UTC, and a missing value as an empty cell. Text that a spreadsheet would run as a
formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading
apostrophe, as OWASP recommends against CSV injection; numbers are never text, so ``-3``
stays ``-3``.

JSON is one object: ``{"report": {parameters}, "sections": {name: [{column: value}]}}``,
with ISO dates and times and numbers as numbers. Section and column names are the same in both.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from uuid import UUID

from pocdojo.jobs.reporting.common import REPORT_TITLES, binary_output
from pocdojo.jobs.reporting.model import Cell, Report, utc

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def render_csv(report: Report, out: BinaryIO | Path) -> None:
    """Write ``report`` as CSV, sections one after another (see the module docstring).

    Args:
        report: the report to write.
        out: a binary stream, or the path of the file to create.
    """
    with _text_output(out) as text:
        writer = csv.writer(text)
        writer.writerow(["# report"])
        writer.writerow(["field", "value"])
        for field, value in _flat_meta(report).items():
            writer.writerow([field, _csv_cell(value)])
        for section in report.sections:
            writer.writerow([])
            writer.writerow([f"# {section.name}"])
            writer.writerow([column.name for column in section.columns])
            writer.writerows([_csv_cell(v) for v in row] for row in section.rows)


def render_json(report: Report, out: BinaryIO | Path) -> None:
    """Write ``report`` as ``{"report": {...}, "sections": {name: [{column: value}]}}``.

    Args:
        report: the report to write.
        out: a binary stream, or the path of the file to create.
    """
    payload = {
        "report": report_meta(report),
        "sections": {section.name: section.records() for section in report.sections},
    }
    with _text_output(out) as text:
        json.dump(payload, text, ensure_ascii=False, allow_nan=False, default=_json_value)


def report_meta(report: Report) -> dict[str, Any]:
    """The report's parameters, keyed like the report request of the public API."""
    request = report.request
    return {
        "reportType": request.report_type,
        "title": REPORT_TITLES[request.report_type],
        "tenant": request.tenant_name,
        "dateRange": {"startDate": request.start.isoformat(), "endDate": request.end.isoformat()},
        "filters": {
            "language": request.language,
            "tags": list(request.tags),
            "userId": str(request.user_id) if request.user_id else None,
        },
        "requestedBy": request.requested_by,
        "generatedAt": utc(request.generated_at).isoformat(),
        "pocCount": report.poc_count,
    }


def neutralize(text: str) -> str:
    """``text`` with a leading apostrophe if a spreadsheet would take it for a formula."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _flat_meta(report: Report) -> dict[str, Cell]:
    meta = report_meta(report)
    flat: dict[str, Cell] = {}
    for key, value in meta.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    flat["tags"] = ", ".join(report.request.tags)
    return flat


def _csv_cell(value: Cell) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralize(value)
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@contextlib.contextmanager
def _text_output(out: BinaryIO | Path) -> Iterator[TextIO]:
    """A UTF-8 text stream over ``out``; a caller's stream is left open."""
    with binary_output(out) as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        try:
            yield text
        finally:
            text.flush()
            text.detach()
