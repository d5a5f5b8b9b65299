"""The XLSX writer: a "Report" sheet with the parameters, then one sheet per section.

Cells are typed: numbers are numbers, dates and times are Excel dates with a date format
(times in UTC, as Excel has no time zones). Text is always written as text, so a title such
as ``=cmd|...`` stays a string and never becomes a formula. Each section sheet has a bold,
frozen header row with an autofilter; sections with a chart hint also get a native chart.
The workbook is written in ``constant_memory`` mode: rows stream to disk as they are written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import xlsxwriter

from pocdojo.jobs.reporting.common import REPORT_TITLES, binary_output, request_fields
from pocdojo.jobs.reporting.model import Cell, Column, Report, Section, utc

SHEET_NAME_MAX = 31
MAX_COLUMN_WIDTH = 60
_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_DATE_WIDTH = {False: 12, True: 10}  # by Column.monthly
_DATETIME_WIDTH = 17

Formats = dict[str, Any]


def render_xlsx(report: Report, out: BinaryIO | Path) -> None:
    """Write ``report`` as an XLSX workbook.

    Args:
        report: the report to write.
        out: a binary stream, or the path of the file to create.
    """
    with binary_output(out) as stream:
        workbook = xlsxwriter.Workbook(stream, {"constant_memory": True})
        formats = _formats(workbook)
        names = sheet_names(["Report", *(s.title for s in report.sections)])
        _cover(workbook.add_worksheet(names[0]), report, formats)
        for name, section in zip(names[1:], report.sections, strict=True):
            _section(workbook, workbook.add_worksheet(name), section, formats)
        workbook.close()


def sheet_names(titles: Iterable[str]) -> list[str]:
    """Valid, unique sheet names for ``titles``: no ``[]:*?/\\``, at most 31 characters.

    Excel compares sheet names without regard to case, so uniqueness does too.
    """
    taken: set[str] = set()
    names = []
    for title in titles:
        base = _FORBIDDEN.sub(" ", title).strip().strip("'")[:SHEET_NAME_MAX] or "Sheet"
        name, n = base, 1
        while name.casefold() in taken:
            n += 1
            suffix = f" ({n})"
            name = base[: SHEET_NAME_MAX - len(suffix)] + suffix
        taken.add(name.casefold())
        names.append(name)
    return names


def _formats(workbook: Any) -> Formats:
    return {
        "header": workbook.add_format(
            {"bold": True, "bottom": 1, "bg_color": "#DCE3EC", "text_wrap": False}
        ),
        "label": workbook.add_format({"bold": True}),
        "int": workbook.add_format({"num_format": "#,##0"}),
        "float2": workbook.add_format({"num_format": "#,##0.00"}),
        "float4": workbook.add_format({"num_format": "0.0000"}),
        "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
        "month": workbook.add_format({"num_format": "yyyy-mm"}),
        "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
        "title": workbook.add_format({"bold": True, "font_size": 14}),
    }


def _cover(sheet: Any, report: Report, formats: Formats) -> None:
    sheet.set_column(0, 0, 18)
    sheet.set_column(1, 1, 50)
    sheet.write_string(0, 0, REPORT_TITLES[report.request.report_type], formats["title"])
    fields = [*request_fields(report.request)]
    for row, (label, value) in enumerate(fields, start=2):
        sheet.write_string(row, 0, label, formats["label"])
        sheet.write_string(row, 1, value)
    sheet.write_string(len(fields) + 2, 0, "POCs in report", formats["label"])
    sheet.write_number(len(fields) + 2, 1, report.poc_count, formats["int"])


def _section(workbook: Any, sheet: Any, section: Section, formats: Formats) -> None:
    columns = section.columns
    for i in range(len(columns)):
        sheet.set_column(i, i, _width(section, i))
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(section.rows), 1), len(columns) - 1)
    if section.chart is not None and section.rows:
        sheet.insert_chart(1, len(columns) + 1, _chart(workbook, sheet.name, section))
    for i, column in enumerate(columns):
        sheet.write_string(0, i, column.label, formats["header"])
    writers = [_writer(sheet, column, formats) for column in columns]
    for r, row in enumerate(section.rows, start=1):
        for c, value in enumerate(row):
            if value is not None:
                writers[c](r, c, value)


def _writer(sheet: Any, column: Column, formats: Formats) -> Callable[[int, int, Any], None]:
    """The call that writes one cell of ``column`` with its type and number format."""
    if column.kind == "int":
        return lambda r, c, v: sheet.write_number(r, c, v, formats["int"])
    if column.kind == "float":
        fmt = formats["float4"] if column.decimals > 2 else formats["float2"]
        return lambda r, c, v: sheet.write_number(r, c, v, fmt)
    if column.kind == "datetime":
        return lambda r, c, v: sheet.write_datetime(r, c, _naive(v), formats["datetime"])
    if column.kind == "date":
        fmt = formats["month"] if column.monthly else formats["date"]
        return lambda r, c, v: sheet.write_datetime(r, c, v, fmt)
    return lambda r, c, v: sheet.write_string(r, c, str(v))


def _naive(moment: datetime) -> datetime:
    # Excel dates have no time zone: write the UTC wall time, as the header says.
    return utc(moment).replace(tzinfo=None)


def _width(section: Section, index: int) -> float:
    column = section.columns[index]
    if column.kind == "datetime":
        longest = _DATETIME_WIDTH
    elif column.kind == "date":
        longest = _DATE_WIDTH[column.monthly]
    else:
        longest = max((_length(row[index]) for row in section.rows), default=0)
    return min(max(longest, len(column.label)) + 2, MAX_COLUMN_WIDTH)


def _length(value: Cell) -> int:
    if isinstance(value, int):
        return len(f"{value:,}")
    if isinstance(value, float):
        return len(f"{value:,.2f}")
    if isinstance(value, date):
        return 10
    return len(value) if value else 0


def _chart(workbook: Any, sheet_name: str, section: Section) -> Any:
    hint = section.chart
    assert hint is not None
    count = min(len(section.rows), hint.limit or len(section.rows))
    category, value = section.column_index(hint.category), section.column_index(hint.value)
    chart = workbook.add_chart({"type": "column" if hint.kind == "bar" else "bar"})
    chart.add_series(
        {
            "name": section.columns[value].label,
            "categories": [sheet_name, 1, category, count, category],
            "values": [sheet_name, 1, value, count, value],
            "fill": {"color": "#3B6EA5"},
        }
    )
    chart.set_title({"name": section.title})
    chart.set_legend({"none": True})
    if hint.kind == "hbar":
        # The first row on top, as in the table, with the value axis still at the bottom.
        chart.set_y_axis({"reverse": True, "crossing": "max"})
    chart.set_size({"width": 720, "height": max(288, 18 * count + 80)})
    return chart
