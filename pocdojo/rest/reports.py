"""Reports: requested here, built by a job, downloaded through an expiring link."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal, Self
from uuid import UUID

from aiohttp import web
from pydantic import Field, model_validator

from pocdojo.core.api import ApiModel, Ctx, Paged, Routes
from pocdojo.core.db import audit
from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.errors import Conflict
from pocdojo.jobs.reporting import CONTENT_TYPES, EXTENSIONS
from pocdojo.rest.fields import Language, Tags
from pocdojo.rest.jobs import (
    JobFields,
    job_fields,
    page_of_mine,
    queue_after_commit,
    signed_url,
    visible,
)
from pocdojo.rest.users import PageQuery

routes = Routes(tag="reports")

ReportType = Literal["summary", "detailed", "analytics", "usage"]
ReportFormat = Literal["pdf", "xlsx", "csv", "json"]


def _one_year_later(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


class DateRange(ApiModel):
    """From startDate to endDate, not before it, less than a year later."""

    start_date: date
    end_date: date

    @model_validator(mode="after")
    def _within_a_year(self) -> Self:
        if self.end_date < self.start_date:
            raise ValueError("endDate must not be before startDate")
        if self.end_date >= _one_year_later(self.start_date):
            raise ValueError("the date range cannot exceed one year")
        return self


class ReportFilters(ApiModel):
    language: Language | None = None
    tags: Tags | None = None
    user_id: UUID | None = None


class ReportGenerate(ApiModel):
    report_type: ReportType
    date_range: DateRange
    filters: ReportFilters = Field(default_factory=ReportFilters)
    format: ReportFormat = "pdf"
    tenant_id: UUID | None = Field(None, description="if given, must be the caller's tenant")


class ReportAccepted(ApiModel):
    report_id: UUID
    status: str
    estimated_time: int = Field(description="seconds, roughly")
    message: str


class ReportStatus(JobFields):
    report_id: UUID
    report_type: ReportType
    format: ReportFormat
    start_date: date
    end_date: date
    download_url: str | None = Field(description="expiring link, once completed")
    size_bytes: int | None
    poc_count: int | None


class ReportList(Paged):
    reports: list[ReportStatus]


def _filename(report: jobs_db.Report) -> str:
    extension = EXTENSIONS[report.format]
    return f"pocdojo-{report.report_type}-{report.start_date}-{report.end_date}.{extension}"


async def _status(ctx: Ctx, report: jobs_db.Report) -> ReportStatus:
    url = None
    if report.job.status == "completed":
        url = await signed_url(
            ctx,
            report.object_key,
            filename=_filename(report),
            content_type=CONTENT_TYPES[report.format],
        )
    return ReportStatus(
        report_id=report.job.id,
        report_type=report.report_type,
        format=report.format,
        start_date=report.start_date,
        end_date=report.end_date,
        download_url=url,
        size_bytes=report.size_bytes,
        poc_count=report.poc_count,
        **job_fields(report.job),
    )


async def _visible(ctx: Ctx) -> jobs_db.Report:
    report: jobs_db.Report = await visible(ctx, "report", "reportId", "report")
    return report


@routes.op(
    "POST", "/v1/reports/generate", response=ReportAccepted, status=202, errors=(403, 422, 429)
)
async def generate_report(ctx: Ctx, body: ReportGenerate) -> ReportAccepted:
    """Request a report over the tenant's POCs; it is built in the background."""
    me = ctx.principal
    ctx.require_tenant(body.tenant_id)
    filters = body.filters.model_dump(mode="json", by_alias=True, exclude_none=True)
    report = await jobs_db.insert(
        ctx.conn,
        "report",
        id=uuid.uuid4(),
        tenant_id=me.tenant_id,
        user_id=me.user_id,
        report_type=body.report_type,
        start_date=body.date_range.start_date,
        end_date=body.date_range.end_date,
        filters=filters,
        format=body.format,
        estimated_time=10 if body.format == "pdf" else 5,
    )
    await audit.record(ctx.conn, ctx.actor(), "generate", "report", report.job.id, filters)
    await queue_after_commit(ctx, "report", report.job.id)
    return ReportAccepted(
        report_id=report.job.id,
        status=report.job.status,
        estimated_time=report.estimated_time or 0,
        message="report queued; poll its status",
    )


@routes.op("GET", "/v1/reports/{reportId:uuid}/status", response=ReportStatus, errors=(404,))
async def report_status(ctx: Ctx) -> ReportStatus:
    """A report's status and progress; a download link once it is completed."""
    return await _status(ctx, await _visible(ctx))


@routes.op("GET", "/v1/reports/{reportId:uuid}/download", status=302, errors=(404, 409))
async def download_report(ctx: Ctx) -> web.StreamResponse:
    """Redirect (302) to an expiring link to the report's file."""
    report = await _visible(ctx)
    if report.job.status != "completed" or report.object_key is None:
        raise Conflict(f"the report is {report.job.status}, not ready", code="not_ready")
    url = await signed_url(
        ctx,
        report.object_key,
        filename=_filename(report),
        content_type=CONTENT_TYPES[report.format],
    )
    assert url is not None
    return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})


@routes.op("GET", "/v1/reports", response=ReportList)
async def list_reports(ctx: Ctx, query: PageQuery) -> ReportList:
    """The caller's reports, newest first."""
    items, paging = await page_of_mine(
        ctx, "report", query.page, query.limit, lambda item: _status(ctx, item)
    )
    return ReportList(reports=items, **paging)
