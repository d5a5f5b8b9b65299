"""Email notifications over REST: templates managed by admins, validation, the per-tenant
limit, and delivery by the worker to the outbox and to a real SMTP server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pocdojo.core.settings import Settings
from pocdojo.jobs.worker import RunningWorker
from tests.helpers import Account, error_of, register, signup
from tests.jobs.job_helpers import Client, wait_status
from tests.jobs.smtp_helpers import SmtpServer

MakeClient = Callable[..., Awaitable[Client]]

TEMPLATE = {
    "subject": "Welcome, {{ name }}",
    "html": "<p>Hello {{ name }}, your dojo is {{ dojo }}.</p>",
    "text": "Hello {{ name }}, your dojo is {{ dojo }}.",
}


async def put_template(
    client: Client, account: Account, template_id: str = "welcome", **body: Any
) -> Any:
    return await client.put(
        f"/v1/notifications/templates/{template_id}",
        headers=account.auth,
        json={**TEMPLATE, **body},
    )


def read_outbox(data_dir: Path) -> list[EmailMessage]:
    """Every message the outbox backend wrote under the data directory."""
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(p.read_bytes()) for p in sorted(data_dir.rglob("*.eml"))]


def email_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipients": ["ana@example.com"],
        "templateId": "welcome",
        "data": {"name": "Ana", "dojo": "Rust kata"},
    }
    body.update(overrides)
    return body


async def test_admins_manage_templates(client: Client, admin: Account) -> None:
    resp = await put_template(client, admin)
    assert resp.status == 201
    created = await resp.json()
    assert created["templateId"] == "welcome"
    assert created["createdBy"] == admin.user_id
    resp = await put_template(client, admin, subject="Hi {{ name }}")
    assert resp.status == 200
    resp = await client.get("/v1/notifications/templates/welcome", headers=admin.auth)
    assert (await resp.json())["subject"] == "Hi {{ name }}"
    user = await register(client, admin, role="user")
    resp = await client.get("/v1/notifications/templates", headers=user.auth)
    assert [t["templateId"] for t in (await resp.json())["templates"]] == ["welcome"]
    resp = await put_template(client, user, "mine")
    assert resp.status == 403
    resp = await client.delete("/v1/notifications/templates/welcome", headers=user.auth)
    assert resp.status == 403
    resp = await client.delete("/v1/notifications/templates/welcome", headers=admin.auth)
    assert resp.status == 204
    resp = await client.delete("/v1/notifications/templates/welcome", headers=admin.auth)
    assert resp.status == 404
    resp = await client.get("/v1/notifications/templates/welcome", headers=admin.auth)
    assert resp.status == 404


async def test_templates_are_per_tenant(client: Client, admin: Account) -> None:
    assert (await put_template(client, admin)).status == 201
    other = await signup(client)
    resp = await client.get("/v1/notifications/templates/welcome", headers=other.auth)
    assert resp.status == 404
    resp = await client.post("/v1/notifications/email", headers=other.auth, json=email_body())
    assert resp.status == 422
    assert (await error_of(resp))["code"] == "unknown_template"
    assert (await put_template(client, other, subject="Theirs")).status == 201
    resp = await client.get("/v1/notifications/templates/welcome", headers=admin.auth)
    assert (await resp.json())["subject"] == TEMPLATE["subject"]


@pytest.mark.parametrize(
    ("template_id", "body"),
    [
        ("bad id!", {}),
        ("x" * 51, {}),
        ("broken", {"html": "<p>{% if %}</p>"}),
        ("broken", {"text": "{{ name "}),
        ("sneaky", {"text": "{% include 'other' %}"}),
        ("long", {"html": "x" * 200_001}),
        ("subject", {"subject": ""}),
    ],
)
async def test_bad_templates_are_refused(
    client: Client, admin: Account, template_id: str, body: dict[str, Any]
) -> None:
    resp = await put_template(client, admin, template_id, **body)
    assert resp.status in (404, 422), await resp.text()
    if resp.status == 422:
        await error_of(resp)
    resp = await client.get("/v1/notifications/templates", headers=admin.auth)
    assert (await resp.json())["templates"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recipients": []}, "recipients"),
        ({"recipients": [f"r{i}@example.com" for i in range(51)]}, "recipients"),
        ({"recipients": ["not-an-address"]}, "recipients"),
        ({"recipients": "ana@example.com"}, "recipients"),
        ({"templateId": ""}, "templateId"),
        ({"subject": "x" * 201}, "subject"),
        ({"data": {"blob": "x" * 70_000}}, "data"),
        ({"data": ["not", "an", "object"]}, "data"),
    ],
)
async def test_send_refuses_bad_input(
    client: Client, admin: Account, change: dict[str, Any], field: str
) -> None:
    assert (await put_template(client, admin)).status == 201
    resp = await client.post(
        "/v1/notifications/email", headers=admin.auth, json=email_body(**change)
    )
    assert resp.status == 422, await resp.text()
    assert field in json.dumps((await error_of(resp))["details"])


async def test_send_checks_the_data_fits_the_template(client: Client, admin: Account) -> None:
    assert (await put_template(client, admin)).status == 201
    resp = await client.post(
        "/v1/notifications/email", headers=admin.auth, json=email_body(data={"name": "Ana"})
    )
    assert resp.status == 422
    error = await error_of(resp)
    assert error["code"] == "template_render_failed"
    assert "dojo" in error["message"]


async def test_a_template_too_deep_to_compile_is_refused(client: Client, admin: Account) -> None:
    resp = await put_template(client, admin, html="{{ " + "(" * 100 + "1" + ")" * 100 + " }}")
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "invalid_template"
    assert error["message"].startswith("html template: "), error


async def test_send_refuses_data_a_filter_fails_on(client: Client, admin: Account) -> None:
    # Saved fine: whether ``dictsort`` works depends on the data, a string here.
    assert (await put_template(client, admin, text="{{ name|dictsort }}")).status == 201
    resp = await client.post("/v1/notifications/email", headers=admin.auth, json=email_body())
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "template_render_failed"
    assert "text template, line 1: AttributeError" in error["message"]


@pytest.mark.timeout(60)
async def test_a_template_that_no_longer_renders_fails_the_job_without_retrying(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client()  # no worker yet: the template changes while the job waits
    admin = await signup(client)
    assert (await put_template(client, admin)).status == 201
    resp = await client.post("/v1/notifications/email", headers=admin.auth, json=email_body())
    assert resp.status == 202, await resp.text()
    note = (await resp.json())["notificationId"]
    assert (await put_template(client, admin, text="{{ name|dictsort }}")).status == 200
    running = RunningWorker(settings.model_copy(update={"job_retry_delay": 0.05}), burst=True)
    running.start()
    await asyncio.wait_for(running.wait(), 45)
    await running.stop()
    status = await wait_status(client, admin, f"/v1/notifications/{note}", within=5)
    assert status["status"] == "failed"
    assert status["attempts"] == 1  # no retry can make the data fit
    assert status["error"].startswith(
        "the template cannot be rendered: text template, line 1: AttributeError: "
    ), status["error"]
    assert read_outbox(settings.data_dir) == []


async def test_viewers_cannot_send(client: Client, admin: Account) -> None:
    assert (await put_template(client, admin)).status == 201
    viewer = await register(client, admin, role="viewer")
    resp = await client.post("/v1/notifications/email", headers=viewer.auth, json=email_body())
    assert resp.status == 403


async def test_the_tenant_limit_counts_recipients(make_client: MakeClient) -> None:
    client = await make_client(emails_per_hour_tenant=5)
    admin = await signup(client)
    assert (await put_template(client, admin)).status == 201
    three = [f"r{i}@example.com" for i in range(3)]
    resp = await client.post(
        "/v1/notifications/email", headers=admin.auth, json=email_body(recipients=three)
    )
    assert resp.status == 202
    resp = await client.post(
        "/v1/notifications/email", headers=admin.auth, json=email_body(recipients=three)
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    # The refused batch was not counted: two more still fit.
    resp = await client.post(
        "/v1/notifications/email", headers=admin.auth, json=email_body(recipients=three[:2])
    )
    assert resp.status == 202
    other = await signup(client)  # another tenant has its own budget
    assert (await put_template(client, other)).status == 201
    resp = await client.post(
        "/v1/notifications/email", headers=other.auth, json=email_body(recipients=three)
    )
    assert resp.status == 202


async def test_status_is_private(client: Client, admin: Account) -> None:
    assert (await put_template(client, admin)).status == 201
    resp = await client.post("/v1/notifications/email", headers=admin.auth, json=email_body())
    accepted = await resp.json()
    assert accepted["status"] == "queued"
    note = f"/v1/notifications/{accepted['notificationId']}"
    user = await register(client, admin, role="user")
    assert (await client.get(note, headers=user.auth)).status == 404
    stranger = await signup(client)
    assert (await client.get(note, headers=stranger.auth)).status == 404
    status = await (await client.get(note, headers=admin.auth)).json()
    assert status["status"] == "queued"
    assert status["recipients"] == ["ana@example.com"]


@pytest.mark.timeout(60)
async def test_outbox_gets_one_message_per_recipient(
    make_client: MakeClient, settings: Settings
) -> None:
    client = await make_client(worker=True)
    admin = await signup(client)
    assert (await put_template(client, admin)).status == 201
    recipients = ["ana@example.com", "Bo@Example.com", "ana@example.com"]
    resp = await client.post(
        "/v1/notifications/email",
        headers=admin.auth,
        json=email_body(recipients=recipients, data={"name": "Zoë <b>", "dojo": "日本"}),
    )
    accepted = await resp.json()
    assert accepted["recipients"] == 2  # duplicates collapse
    status = await wait_status(client, admin, f"/v1/notifications/{accepted['notificationId']}")
    assert status["status"] == "sent", status
    assert status["sentAt"] is not None
    # Domains are normalized to lower case (local parts are case-sensitive and kept).
    assert set(status["messageIds"]) == {"ana@example.com", "Bo@example.com"}
    messages = read_outbox(settings.data_dir)
    assert sorted(str(m["To"]) for m in messages) == ["Bo@example.com", "ana@example.com"]
    for message in messages:
        assert message["Subject"] == "Welcome, Zoë <b>"
        assert message["Message-ID"] in status["messageIds"].values()
        html = message.get_body(("html",))
        text = message.get_body(("plain",))
        assert html is not None
        assert text is not None
        assert "Zoë &lt;b&gt;" in html.get_content()
        assert "Zoë <b>, your dojo is 日本." in text.get_content()


@pytest.mark.timeout(60)
async def test_smtp_delivery_through_a_real_server(
    make_client: MakeClient, smtp_server: SmtpServer
) -> None:
    client = await make_client(
        worker=True,
        email_backend="smtp",
        smtp_url=SecretStr(f"smtp://alice:s%3Acret@127.0.0.1:{smtp_server.port}"),
        email_from="Dojo Bot <bot@dojo.example>",
    )
    admin = await signup(client)
    assert (await put_template(client, admin)).status == 201
    recipients = ["ana@example.com", "bo@example.com"]
    resp = await client.post(
        "/v1/notifications/email", headers=admin.auth, json=email_body(recipients=recipients)
    )
    note = (await resp.json())["notificationId"]
    status = await wait_status(client, admin, f"/v1/notifications/{note}")
    assert status["status"] == "sent", status
    received = smtp_server.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == recipients
    for item in received:
        assert item.mail_from == "bot@dojo.example"
        assert item.message["Subject"] == "Welcome, Ana"
        assert item.message["Message-ID"] == status["messageIds"][item.rcpt_tos[0]]


@pytest.mark.timeout(60)
async def test_a_refusing_server_fails_the_notification_without_retrying(
    make_client: MakeClient, smtp_server: SmtpServer
) -> None:
    smtp_server.handler.rcpt_reply = "550 5.1.1 No such user"
    client = await make_client(
        worker=True,
        email_backend="smtp",
        smtp_url=SecretStr(f"smtp://127.0.0.1:{smtp_server.port}"),
        job_retry_delay=0.05,
    )
    admin = await signup(client)
    assert (await put_template(client, admin)).status == 201
    resp = await client.post("/v1/notifications/email", headers=admin.auth, json=email_body())
    note = (await resp.json())["notificationId"]
    status = await wait_status(client, admin, f"/v1/notifications/{note}")
    assert status["status"] == "failed"
    assert status["attempts"] == 1  # a permanent refusal is not retried
    assert "ana@example.com" in status["error"]
    assert "550" in status["error"] or "No such user" in status["error"]
