"""Email notifications from tenant-managed templates, sent by a job with retries."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import Field, StringConstraints, field_validator

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Routes
from pocdojo.core.db import audit
from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.errors import NotFound, ValidationFailed
from pocdojo.jobs.mail import templates
from pocdojo.rest.fields import Email
from pocdojo.rest.jobs import queue_after_commit, visible

routes = Routes(tag="notifications")

MAX_RECIPIENTS = 50
MAX_DATA_BYTES = 64 * 1024

TemplateId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class EmailSend(ApiModel):
    recipients: list[Email] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    template_id: TemplateId
    subject: Subject | None = Field(None, description="overrides the template's subject")
    data: dict[str, Any] = Field(default_factory=dict, description="the template's variables")
    tenant_id: UUID | None = Field(None, description="if given, must be the caller's tenant")

    @field_validator("recipients")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value).encode()) > MAX_DATA_BYTES:
            raise ValueError(f"data must be at most {MAX_DATA_BYTES} bytes of JSON")
        return value


class EmailAccepted(ApiModel):
    notification_id: UUID
    status: str
    message_id: str | None
    recipients: int


DeliveryStatus = Literal["queued", "sending", "sent", "failed"]
_DELIVERY = {"queued": "queued", "processing": "sending", "completed": "sent", "failed": "failed"}


class NotificationStatus(ApiModel):
    notification_id: UUID
    status: DeliveryStatus
    template_id: str
    recipients: list[str]
    message_ids: dict[str, str] = Field(description="per recipient, once the server took it")
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None


class TemplateBody(ApiModel):
    subject: Subject
    html: str = Field(max_length=templates.MAX_TEMPLATE_CHARS)
    text: str = Field(max_length=templates.MAX_TEMPLATE_CHARS)


class TemplateOut(ApiModel):
    template_id: str
    subject: str
    html: str
    text: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime


class TemplateList(ApiModel):
    templates: list[TemplateOut]


class TemplateIdCheck(ApiModel):
    template_id: TemplateId

    @classmethod
    def check(cls, value: str) -> str:
        try:
            return cls(template_id=value).template_id
        except ValueError as exc:
            raise ValidationFailed(
                "templateId: 1-50 letters, digits, '_', '.', '-', starting with a letter or digit",
                code="invalid_template_id",
            ) from exc


def _template_out(t: jobs_db.EmailTemplate) -> TemplateOut:
    return TemplateOut(**{k: getattr(t, k) for k in TemplateOut.model_fields})


def _template_id(ctx: Ctx) -> str:
    value = ctx.request.match_info["templateId"]
    if len(value) > 50:
        raise NotFound("template not found")
    return value


@routes.op(
    "POST",
    "/v1/notifications/email",
    response=EmailAccepted,
    status=202,
    roles=("admin", "user"),
    errors=(403, 422, 429),
)
async def send_email(ctx: Ctx, body: EmailSend) -> EmailAccepted:
    """Send a templated email to up to 50 recipients (each gets their own message)."""
    me = ctx.principal
    ctx.require_tenant(body.tenant_id)
    stored = await jobs_db.get_template(ctx.conn, body.template_id)
    if stored is None:
        raise ValidationFailed(
            f"template {body.template_id!r} does not exist",
            code="unknown_template",
            details=[{"field": "templateId", "message": "no such template in this tenant"}],
        )
    try:
        # Rendering is CPU work bounded by the sandbox's budget (up to seconds): not on the loop.
        await asyncio.to_thread(
            templates.render_email,
            templates.EmailTemplate(subject=stored.subject, html=stored.html, text=stored.text),
            body.data,
            body.subject,
        )
    except templates.TemplateError as exc:
        raise ValidationFailed(str(exc), code="template_render_failed") from exc
    await ctx.app[appkeys.limiter_key].take(
        f"email:{me.tenant_id}",
        cost=len(body.recipients),
        limit=ctx.settings.emails_per_hour_tenant,
        window=3600,
        what="emails for this tenant this hour",
    )
    note = await jobs_db.insert(
        ctx.conn,
        "email",
        id=uuid.uuid4(),
        tenant_id=me.tenant_id,
        user_id=me.user_id,
        recipients=body.recipients,
        template_id=body.template_id,
        subject=body.subject,
        data=body.data,
    )
    await audit.record(
        ctx.conn,
        ctx.actor(),
        "send",
        "notification",
        note.job.id,
        {"templateId": body.template_id, "recipients": len(body.recipients)},
    )
    await queue_after_commit(ctx, "email", note.job.id)
    return EmailAccepted(
        notification_id=note.job.id,
        status="queued",
        message_id=None,
        recipients=len(body.recipients),
    )


@routes.op(
    "PUT",
    "/v1/notifications/templates/{templateId}",
    response=TemplateOut,
    roles=("admin",),
    errors=(403, 422),
    other_responses=((201, TemplateOut),),
    path_types={"templateId": TemplateId},
)
async def put_template(ctx: Ctx, body: TemplateBody) -> web.StreamResponse:
    """Create or replace an email template (admins). Jinja syntax, sandboxed."""
    template_id = TemplateIdCheck.check(ctx.request.match_info["templateId"])
    try:
        templates.validate_template(body.subject, body.html, body.text)
    except templates.TemplateError as exc:
        raise ValidationFailed(str(exc), code="invalid_template") from exc
    me = ctx.principal
    saved, created = await jobs_db.put_template(
        ctx.conn,
        me.tenant_id,
        template_id,
        subject=body.subject,
        html=body.html,
        text=body.text,
        user_id=me.user_id,
    )
    await audit.record(
        ctx.conn,
        ctx.actor(),
        "create" if created else "update",
        "email_template",
        None,
        {"templateId": template_id},
    )
    return web.json_response(
        _template_out(saved).model_dump(mode="json", by_alias=True), status=201 if created else 200
    )


@routes.op("GET", "/v1/notifications/templates", response=TemplateList)
async def list_templates(ctx: Ctx) -> TemplateList:
    """The tenant's email templates."""
    return TemplateList(
        templates=[_template_out(t) for t in await jobs_db.list_templates(ctx.conn)]
    )


@routes.op(
    "GET",
    "/v1/notifications/templates/{templateId}",
    response=TemplateOut,
    errors=(404,),
    path_types={"templateId": TemplateId},
)
async def get_template(ctx: Ctx) -> TemplateOut:
    """One email template."""
    found = await jobs_db.get_template(ctx.conn, _template_id(ctx))
    if found is None:
        raise NotFound("template not found")
    return _template_out(found)


@routes.op(
    "DELETE",
    "/v1/notifications/templates/{templateId}",
    status=204,
    roles=("admin",),
    errors=(403, 404),
    path_types={"templateId": TemplateId},
)
async def delete_template(ctx: Ctx) -> web.StreamResponse:
    """Delete an email template (admins)."""
    template_id = _template_id(ctx)
    if not await jobs_db.delete_template(ctx.conn, template_id):
        raise NotFound("template not found")
    await audit.record(
        ctx.conn, ctx.actor(), "delete", "email_template", None, {"templateId": template_id}
    )
    return web.Response(status=204)


@routes.op(
    "GET", "/v1/notifications/{notificationId:uuid}", response=NotificationStatus, errors=(404,)
)
async def notification_status(ctx: Ctx) -> NotificationStatus:
    """Delivery status of a notification, with the message id each recipient's server gave."""
    note: jobs_db.Notification = await visible(ctx, "email", "notificationId", "notification")
    return NotificationStatus(
        notification_id=note.job.id,
        status=_DELIVERY[note.job.status],
        template_id=note.template_id,
        recipients=note.recipients,
        message_ids=note.message_ids,
        attempts=note.job.attempts,
        error=note.job.error,
        created_at=note.job.created_at,
        sent_at=note.sent_at,
    )
