"""The email job: render the tenant's template and send one message per recipient.

Each accepted message's id is saved as soon as the backend takes it, so a retry after a
transient failure sends only to the recipients still missing, never twice to the others.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import tenant_tx
from pocdojo.jobs.mail import backends, templates
from pocdojo.jobs.runtime import Deps, PermanentJobError, Progress


def _backend(deps: Deps) -> Any:
    if deps.email is None:
        settings = deps.settings
        deps.email = backends.open_email_backend(
            settings.email_backend,
            data_dir=settings.data_dir,
            smtp_url=settings.smtp_url.get_secret_value() if settings.smtp_url else None,
            ses_region=settings.ses_region,
        )
    return deps.email


async def send(deps: Deps, job: jobs_db.Job, progress: Progress) -> dict[str, Any]:
    """Send the notification ``job`` names; returns the notification row's result."""
    async with tenant_tx(deps.pool, job.tenant_id) as conn:
        note: jobs_db.Notification | None = await jobs_db.get(conn, "email", job.id)
        if note is None:
            raise PermanentJobError("the notification no longer exists")
        stored = await jobs_db.get_template(conn, note.template_id)
    if stored is None:
        raise PermanentJobError(f"template {note.template_id!r} no longer exists")
    template = templates.EmailTemplate(subject=stored.subject, html=stored.html, text=stored.text)
    try:
        rendered = await asyncio.to_thread(
            templates.render_email, template, note.data, note.subject
        )
    except templates.TemplateError as exc:
        # The template (replaced since, perhaps) fails on this data: no retry can help. Its
        # message names the part, the line and what failed.
        raise PermanentJobError(f"the template cannot be rendered: {exc.message}") from exc
    backend = _backend(deps)
    sent = dict(note.message_ids)
    refused: dict[str, str] = {}
    domain = deps.settings.email_from.rsplit("@", 1)[-1].strip(" >") or "localhost"
    for done, recipient in enumerate(note.recipients, start=1):
        if recipient in sent:
            continue
        message = backends.build_message(deps.settings.email_from, recipient, rendered, domain)
        try:
            sent[recipient] = await backend.send(message)
        except backends.PermanentEmailError as exc:
            refused[recipient] = str(exc)
            continue
        async with tenant_tx(deps.pool, job.tenant_id) as conn:
            await jobs_db.set_result(conn, "email", job.id, message_ids=sent)
        progress.report(done * 100 // len(note.recipients))
    if refused:
        listed = "; ".join(f"{r}: {why}" for r, why in refused.items())
        raise PermanentJobError(f"refused by the mail server: {listed}")
    return {"message_ids": sent, "sent_at": datetime.now(UTC)}
