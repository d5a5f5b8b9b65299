"""Shared by the writers: their output target, how a cell reads to a person, what was asked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

from pocdojo.jobs.reporting.model import Cell, Column, ReportRequest, utc

REPORT_TITLES = {
    "summary": "Summary report",
    "detailed": "Detailed report",
    "analytics": "Analytics report",
    "usage": "Usage report",
}


def human_cell(value: Cell, column: Column) -> str:
    """``value`` as a table prints it: grouped thousands, the column's decimals, UTC ISO dates."""
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{column.decimals}f}"
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.strftime("%Y-%m") if column.monthly else value.isoformat()
    return value


def period(request: ReportRequest) -> str:
    """The date range, both ends included."""
    return f"{request.start.isoformat()} to {request.end.isoformat()}"


def request_fields(request: ReportRequest) -> list[tuple[str, str]]:
    """The report's parameters as (label, value) pairs, in the order a title page lists them."""
    return [
        ("Report type", request.report_type),
        ("Tenant", request.tenant_name),
        ("Period", period(request)),
        ("Language", request.language or "all"),
        ("Tags", ", ".join(request.tags) if request.tags else "all"),
        ("User", str(request.user_id) if request.user_id else "all"),
        ("Generated at", utc(request.generated_at).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Requested by", request.requested_by),
    ]


@contextlib.contextmanager
def binary_output(out: BinaryIO | Path) -> Iterator[BinaryIO]:
    """``out`` itself, or the file at path ``out`` opened for writing and closed afterwards."""
    if isinstance(out, Path):
        with out.open("wb") as stream:
            yield stream
    else:
        yield out
