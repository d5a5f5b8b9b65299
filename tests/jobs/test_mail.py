"""Email templates (the sandbox and its limits), messages, and the three delivery backends.

SMTP is tested against a real aiosmtpd server on a loopback port; SES only against the real
service, when ``SES_TEST_REGION`` and ``SES_TEST_SENDER`` name a region and a verified sender.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from pocdojo.core.errors import ConfigError, ValidationFailed
from pocdojo.jobs.mail.backends import (
    OutboxBackend,
    PermanentEmailError,
    SesBackend,
    SmtpBackend,
    TransientEmailError,
    build_message,
    classify_ses_error,
    classify_smtp_error,
    open_email_backend,
    outbox_directory,
)
from pocdojo.jobs.mail.templates import (
    EmailTemplate,
    RenderedEmail,
    TemplateLimits,
    render_email,
    validate_template,
)
from tests.jobs.smtp_helpers import SmtpServer, parse
from tests.servers import free_port

SENDER = "Pocdojo Notifications <no-reply@pocdojo.test>"
DOMAIN = "pocdojo.test"

WELCOME = EmailTemplate(
    subject="Welcome, {{ name }}!",
    html=(
        "<p>Hello {{ name }},</p>\n<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>"
    ),
    text="Hello {{ name }},\n{% for item in items %}- {{ item }}\n{% endfor %}",
)


def rendered(subject: str = "Grüße ✓", name: str = "Zoë") -> RenderedEmail:
    return RenderedEmail(
        subject=subject,
        html=f"<p>Hallo {name} — 🎉</p>",
        text=f"Hallo {name} — 🎉\n" + "long line " * 30,
    )


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def bodies(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


# -- Templates -------------------------------------------------------------------------------


def test_render_escapes_html_but_not_text_or_subject() -> None:
    data = {"name": "<b>Tom & Jerry</b>", "items": ["<i>one</i>", "two"]}
    email = render_email(WELCOME, data)
    assert email.subject == "Welcome, <b>Tom & Jerry</b>!"
    assert "<p>Hello &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;,</p>" in email.html
    assert "<li>&lt;i&gt;one&lt;/i&gt;</li><li>two</li>" in email.html
    assert email.text == "Hello <b>Tom & Jerry</b>,\n- <i>one</i>\n- two\n"


def test_render_keeps_unicode() -> None:
    template = EmailTemplate(
        subject="Grüße, {{ name }} ✓", html="<p>{{ name }} 🎉</p>", text="{{ name }}"
    )
    email = render_email(template, {"name": "Zoë Ångström"})
    assert email == RenderedEmail("Grüße, Zoë Ångström ✓", "<p>Zoë Ångström 🎉</p>", "Zoë Ångström")


def test_macros_set_blocks_and_filters_still_work() -> None:
    template = EmailTemplate(
        subject="{{ count }} {{ 'item' if count == 1 else 'items' }}",
        html=(
            "{% macro row(label, value) %}<tr><td>{{ label }}</td><td>{{ value }}</td></tr>"
            "{% endmacro %}{% set total %}{{ prices|sum }}{% endset %}"
            "<table>{% for p in prices %}{{ row(loop.index, '%.2f'|format(p)) }}{% endfor %}"
            "</table><p>{{ total }} / {{ names|map('upper')|join(', ') }}</p>"
        ),
        text="{{ '{:>6}'.format(count) }}|{{ 'ab'.center(6, '*') }}|{{ note|wordwrap(10) }}",
    )
    data = {"count": 2, "prices": [1.5, 2], "names": ["a", "b"], "note": "a b c d e f g h i j k"}
    email = render_email(template, data)
    assert email.subject == "2 items"
    assert "<tr><td>2</td><td>2.00</td></tr></table><p>3.5 / A, B</p>" in email.html
    assert email.text.startswith("     2|**ab**|a b c d e\n")


def test_missing_variable_is_named() -> None:
    with pytest.raises(ValidationFailed) as caught:
        render_email(WELCOME, {"items": []})
    assert "'name' is undefined" in caught.value.message
    assert caught.value.details["part"] == "subject"


def test_missing_attribute_is_named_with_its_line() -> None:
    template = EmailTemplate(subject="Hi", html="<p>\n{{ order.total }}</p>", text="")
    with pytest.raises(ValidationFailed) as caught:
        render_email(template, {"order": {"id": 1}})
    assert "has no attribute 'total'" in caught.value.message
    assert caught.value.message.startswith("html template, line 2: ")
    assert (caught.value.details["part"], caught.value.details["line"]) == ("html", 2)


def test_syntax_error_gives_part_and_line() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_template("Hi", "<p>one</p>\n<p>two</p>\n{% if %}", "text")
    error = caught.value
    assert error.status == 422
    assert error.details["part"] == "html"
    assert error.details["line"] == 3
    assert error.message.startswith("html template, line 3: ")


def test_unknown_filter_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed, match="No filter named 'shout'"):
        validate_template("Hi", "", "{{ name|shout }}")


def test_valid_template_passes_validation() -> None:
    validate_template(WELCOME.subject, WELCOME.html, WELCOME.text)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ items.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ namespace.__init__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ items.append(4) }}",
        "{{ (items|first).__class__ }}",
        "{{ '{0.__class__}'.format(items) }}",
    ],
)
def test_sandbox_refuses_internals(source: str) -> None:
    template = EmailTemplate(subject="Hi", html="", text=source)
    with pytest.raises(ValidationFailed) as caught:
        render_email(template, {"items": [1, 2, 3]})
    assert caught.value.details["part"] == "text"
    assert "not allowed" in caught.value.message


@pytest.mark.parametrize(
    ("source", "tag"),
    [
        ("{% include 'other.html' %}", "include"),
        ("{% extends 'base.html' %}", "extends"),
        ("{% import 'macros.html' as m %}", "import"),
        ("{% from 'macros.html' import row %}", "from ... import"),
    ],
)
def test_other_templates_cannot_be_reached(source: str, tag: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_template("Hi", "<p>x</p>\n" + source, "")
    assert f"'{tag}' is not allowed" in caught.value.message
    assert caught.value.details["line"] == 2


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{{ " + "(" * 100 + "1" + ")" * 100 + " }}", "nest too deeply"),  # Jinja's parser
        ("{{ x" + ".a" * 3000 + " }}", "nest too deeply"),
        # Python's compiler, on the code Jinja generates:
        ("{{ 1" + " + 1" * 200 + " }}", "too many nested parentheses"),
        ("{% for a in b %}" * 25 + "{% endfor %}" * 25, "too many statically nested blocks"),
        ("{{ " + "9" * 5000 + " }}", "digits"),  # past Python's int conversion limit
    ],
)
def test_templates_too_deep_for_the_compiler_are_refused(source: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_template("Hi", source, "")
    error = caught.value
    assert error.code == "invalid_template"
    assert error.details["part"] == "html"
    assert why in error.message


def test_recursive_loops_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="recursive loops"):
        validate_template("Hi", "", "{% for x in tree recursive %}{{ loop(x) }}{% endfor %}")


def test_oversized_source_is_refused() -> None:
    limits = TemplateLimits(max_source_chars=1_000)
    with pytest.raises(ValidationFailed) as caught:
        validate_template("Hi", "x" * 1_001, "", limits=limits)
    assert caught.value.code == "template_too_large"
    assert caught.value.details["part"] == "html"
    validate_template("Hi", "x" * 1_000, "", limits=limits)


def test_oversized_output_is_refused() -> None:
    limits = TemplateLimits(max_output_chars=10_000)
    template = EmailTemplate(
        subject="Hi", html="{% for i in range(n) %}0123456789{% endfor %}", text=""
    )
    assert len(render_email(template, {"n": 1_000}, limits=limits).html) == 10_000
    with pytest.raises(ValidationFailed) as caught:
        render_email(template, {"n": 1_001}, limits=limits)
    assert caught.value.code == "template_too_large"
    assert "longer than 10000 characters" in caught.value.message


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{{ 'x' * 1000000000 }}", "value larger"),
        ("{{ 9 ** (9 ** 9) }}", "value larger"),
        ("{% set s = 'ab' %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}", "value larger"),
        (
            "{% set s %}ab{% endset %}" + "{% set s %}{{ s }}{{ s }}{% endset %}" * 40,
            "value larger",
        ),
        ("{{ 'a'.ljust(1000000000) }}", "value larger"),
        ("{{ 'a'|center(1000000000) }}", "value larger"),
        ("{{ '{:>1000000000}'.format('a') }}", "value larger"),
        ("{{ '%*s' % (1000000000, 'a') }}", "value larger"),
        ("{% set s = 'a' * 100000 %}{{ s|replace('a', s) }}", "value larger"),
        ("{% set s = 'a' * 400000 %}{{ [s, s, s]|join }}", "value larger"),
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "steps",
        ),
        ("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", "nest too deeply"),
    ],
)
def test_runaway_templates_are_stopped(source: str, why: str) -> None:
    template = EmailTemplate(subject="Hi", html="", text=source)
    with pytest.raises(ValidationFailed) as caught:
        render_email(template, {})
    assert why in caught.value.message
    assert caught.value.details["part"] == "text"


def test_slow_templates_hit_the_deadline() -> None:
    limits = TemplateLimits(max_steps=10**12, max_seconds=0.2)
    source = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(ValidationFailed, match=r"longer than 0.2 s"):
        render_email(EmailTemplate(subject="Hi", html=source, text=""), {}, limits=limits)


def test_template_errors_on_the_data_are_validation_errors() -> None:
    template = EmailTemplate(subject="Hi", html="", text="ok\n{{ 10 / n }}")
    with pytest.raises(ValidationFailed) as caught:
        render_email(template, {"n": 0})
    assert "ZeroDivisionError" in caught.value.message
    assert caught.value.details["line"] == 2


@pytest.mark.parametrize(
    ("source", "raised"),
    [
        ("{{ name|dictsort }}", "AttributeError"),  # a filter for dicts given a string
        ("{{ name|xmlattr }}", "AttributeError"),
        ("{{ name|truncate(-5) }}", "AssertionError"),  # Jinja asserts its arguments
    ],
)
def test_filters_failing_on_the_data_are_validation_errors(source: str, raised: str) -> None:
    template = EmailTemplate(subject="Hi", html="<p>x</p>\n" + source, text="")
    with pytest.raises(ValidationFailed) as caught:
        render_email(template, {"name": "Ana"})
    error = caught.value
    assert error.code == "invalid_template"
    assert (error.details["part"], error.details["line"]) == ("html", 2)
    assert raised in error.message


def test_subject_template_must_be_one_line() -> None:
    with pytest.raises(ValidationFailed, match="single line"):
        validate_template("Hello\n{{ name }}", "", "")


@pytest.mark.parametrize(
    "name", ["Eve\r\nBcc: victim@example.com", "Eve\nX", "Eve\u2028X", "A\x00"]
)
def test_subject_rendered_onto_two_lines_is_refused(name: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        render_email(WELCOME, {"name": name, "items": []})
    assert caught.value.details["part"] == "subject"


def test_subject_override_is_plain_text_and_one_line() -> None:
    email = render_email(WELCOME, {"name": "Ann", "items": []}, "  Your {{ order }} ✓ ")
    assert email.subject == "Your {{ order }} ✓"
    with pytest.raises(ValidationFailed, match="one line"):
        render_email(WELCOME, {"name": "Ann", "items": []}, "Hi\r\nBcc: x@example.com")


# -- Messages --------------------------------------------------------------------------------


def test_build_message_is_multipart_alternative_with_headers() -> None:
    message = parse(
        build_message(SENDER, "Zoë <zoe@bücher.example>", rendered(), DOMAIN).as_bytes()
    )
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert str(message["From"]) == SENDER
    assert str(message["To"]) == "Zoë <zoe@xn--bcher-kva.example>"
    assert str(message["Subject"]) == "Grüße ✓"
    assert str(message["Message-ID"]).endswith(f"@{DOMAIN}>")
    assert message["Date"].datetime.tzinfo is not None
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = bodies(message)
    assert text.startswith("Hallo Zoë — 🎉\n")
    assert html.strip() == "<p>Hallo Zoë — 🎉</p>"


def test_build_message_gives_each_message_its_own_id() -> None:
    ids = {
        build_message(SENDER, "a@example.com", rendered(), DOMAIN)["Message-ID"] for _ in range(50)
    }
    assert len(ids) == 50


@pytest.mark.parametrize(
    ("recipient", "complaint"),
    [
        ("", "expected one email address"),
        ("not-an-address", "not an email address"),
        ("a@example.com, b@example.com", "expected one email address"),
        ("a@x..y", "invalid domain"),
    ],
)
def test_build_message_refuses_bad_recipients(recipient: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        build_message(SENDER, recipient, rendered(), DOMAIN)


def test_build_message_refuses_header_injection_even_unrendered() -> None:
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        build_message(SENDER, "a@example.com", rendered(subject="Hi\r\nBcc: x@example.com"), DOMAIN)


# -- Outbox ----------------------------------------------------------------------------------


async def test_outbox_writes_parseable_eml_files(tmp_path: Path) -> None:
    backend = OutboxBackend(tmp_path / "outbox")
    first = build_message(SENDER, "ann@example.com", rendered(name="Ann"), DOMAIN)
    second = build_message(SENDER, "Zoë <zoe@example.com>", rendered(name="Zoë"), DOMAIN)
    ids = [await backend.send(first), await backend.send(second)]
    await backend.close()

    files = files_in(tmp_path / "outbox")
    assert [f.suffix for f in files] == [".eml", ".eml"]  # no temporary files left behind
    messages = [parse(f.read_bytes()) for f in files]
    assert (
        [str(m["Message-ID"]) for m in messages]
        == ids
        == [first["Message-ID"], second["Message-ID"]]
    )
    assert [str(m["To"]) for m in messages] == ["ann@example.com", "Zoë <zoe@example.com>"]
    assert {str(m["Subject"]) for m in messages} == {"Grüße ✓"}
    assert bodies(messages[1])[0].splitlines()[0] == "Hallo Zoë — 🎉"
    assert "<p>Hallo Zoë — 🎉</p>" in bodies(messages[1])[1]
    raw = files[0].read_bytes()
    assert b"\r\n" in raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998  # RFC 5322 line limit


async def test_outbox_names_never_collide(tmp_path: Path) -> None:
    backend = OutboxBackend(tmp_path)
    messages = [build_message(SENDER, f"u{i}@example.com", rendered(), DOMAIN) for i in range(40)]
    ids = await asyncio.gather(*(backend.send(m) for m in messages))
    files = files_in(tmp_path)
    assert [f.suffix for f in files] == [".eml"] * 40
    assert {str(parse(f.read_bytes())["Message-ID"]) for f in files} == set(ids)


async def test_outbox_refuses_a_message_without_message_id(tmp_path: Path) -> None:
    message = build_message(SENDER, "a@example.com", rendered(), DOMAIN)
    del message["Message-ID"]
    with pytest.raises(ValueError, match="Message-ID"):
        await OutboxBackend(tmp_path).send(message)
    assert files_in(tmp_path) == []


# -- SMTP ------------------------------------------------------------------------------------


def smtp_backend(port: int, **options: Any) -> SmtpBackend:
    options.setdefault("timeout", 10)
    return SmtpBackend("127.0.0.1", port, local_hostname="client.test", **options)


async def test_smtp_delivers_each_message_over_one_connection(smtp_server: SmtpServer) -> None:
    backend = smtp_backend(smtp_server.port)
    recipients = ["ann@example.com", "Zoë <zoe@example.com>", "bob@example.com"]
    messages = [build_message(SENDER, r, rendered(), DOMAIN) for r in recipients]
    try:
        ids = [await backend.send(m) for m in messages]
    finally:
        await backend.close()

    got = smtp_server.handler.received
    assert [r.rcpt_tos for r in got] == [
        ["ann@example.com"],
        ["zoe@example.com"],
        ["bob@example.com"],
    ]
    assert {r.mail_from for r in got} == {"no-reply@pocdojo.test"}
    assert [str(r.message["Message-ID"]) for r in got] == ids
    assert str(got[1].message["Subject"]) == "Grüße ✓"
    assert str(got[1].message["To"]) == "Zoë <zoe@example.com>"
    text, html = bodies(got[1].message)
    assert text.splitlines()[0] == "Hallo Zoë — 🎉"  # CRLF on the wire
    assert html.strip() == "<p>Hallo Zoë — 🎉</p>"
    assert smtp_server.handler.connections() == 1


async def test_smtp_sends_unicode_local_parts_with_smtputf8(smtp_server: SmtpServer) -> None:
    backend = smtp_backend(smtp_server.port)
    try:
        await backend.send(build_message(SENDER, "jörg@example.com", rendered(), DOMAIN))
    finally:
        await backend.close()
    (got,) = smtp_server.handler.received
    assert got.rcpt_tos == ["jörg@example.com"]
    assert str(got.message["To"]) == "jörg@example.com"


async def test_smtp_logs_in_with_credentials_from_the_url(smtp_server: SmtpServer) -> None:
    url = f"smtp://alice:s%3Acret@127.0.0.1:{smtp_server.port}?starttls=false&timeout=10"
    backend = open_email_backend("smtp", data_dir=Path("unused"), smtp_url=url)
    try:
        await backend.send(build_message(SENDER, "ann@example.com", rendered(), DOMAIN))
    finally:
        await backend.close()
    (got,) = smtp_server.handler.received
    assert got.session.authenticated is True


async def test_smtp_wrong_password_is_permanent(smtp_server: SmtpServer) -> None:
    backend = smtp_backend(smtp_server.port, username="alice", password="wrong")
    with pytest.raises(PermanentEmailError) as caught:
        await backend.send(build_message(SENDER, "ann@example.com", rendered(), DOMAIN))
    assert caught.value.code == 535
    assert "wrong" not in str(caught.value)
    await backend.close()


@pytest.mark.parametrize(
    ("stage", "reply", "error"),
    [
        ("rcpt", "451 4.3.0 Mailbox temporarily unavailable", TransientEmailError),
        ("rcpt", "550 5.1.1 No such user", PermanentEmailError),
        ("data", "451 4.3.0 Try again later", TransientEmailError),
        ("data", "554 5.7.1 Message rejected as spam", PermanentEmailError),
    ],
)
async def test_smtp_replies_decide_transient_or_permanent(
    smtp_server: SmtpServer, stage: str, reply: str, error: type[Exception]
) -> None:
    setattr(smtp_server.handler, f"{stage}_reply", reply)
    backend = smtp_backend(smtp_server.port)
    try:
        with pytest.raises(error) as caught:
            await backend.send(build_message(SENDER, "ann@example.com", rendered(), DOMAIN))
        assert caught.value.code == int(reply[:3])  # type: ignore[attr-defined]
        # The server recovers: the next send goes through on a new connection.
        setattr(smtp_server.handler, f"{stage}_reply", None)
        await backend.send(build_message(SENDER, "bob@example.com", rendered(), DOMAIN))
    finally:
        await backend.close()
    assert [r.rcpt_tos for r in smtp_server.handler.received] == [["bob@example.com"]]


async def test_smtp_connection_refused_is_transient() -> None:
    backend = smtp_backend(free_port())  # nothing listens there
    with pytest.raises(TransientEmailError, match="smtp connection failed"):
        await backend.send(build_message(SENDER, "ann@example.com", rendered(), DOMAIN))
    await backend.close()


async def test_smtp_silent_server_times_out_as_transient() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        backend = smtp_backend(silent.getsockname()[1], timeout=0.3)
        with pytest.raises(TransientEmailError):
            await backend.send(build_message(SENDER, "ann@example.com", rendered(), DOMAIN))
        await backend.close()


async def test_smtp_server_stalling_mid_transaction_is_transient(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_stalls = True
    backend = smtp_backend(smtp_server.port, timeout=0.3)
    with pytest.raises(TransientEmailError, match="Timed out"):
        await backend.send(build_message(SENDER, "ann@example.com", rendered(), DOMAIN))
    await backend.close()


def cert_failure() -> aiosmtplib.SMTPConnectError:
    error = aiosmtplib.SMTPConnectError("Error connecting to mail.test on port 465")
    error.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (aiosmtplib.SMTPConnectResponseError(421, "too busy"), TransientEmailError),
        (aiosmtplib.SMTPConnectResponseError(554, "no service here"), PermanentEmailError),
        (aiosmtplib.SMTPSenderRefused(451, "later", "a@b.test"), TransientEmailError),
        (aiosmtplib.SMTPSenderRefused(553, "not yours", "a@b.test"), PermanentEmailError),
        (aiosmtplib.SMTPAuthenticationError(454, "temporary auth failure"), TransientEmailError),
        (
            aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"),
            TransientEmailError,
        ),
        (aiosmtplib.SMTPServerDisconnected("Connection lost"), TransientEmailError),
        (ConnectionResetError("reset by peer"), TransientEmailError),
        (
            aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server"),
            PermanentEmailError,
        ),
        (cert_failure(), PermanentEmailError),
    ],
)
def test_smtp_errors_map_to_transient_or_permanent(
    error: Exception, expected: type[Exception]
) -> None:
    assert type(classify_smtp_error(error)) is expected


# -- SES -------------------------------------------------------------------------------------


def client_error(code: str, status: int, message: str = "") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message, "Type": "Sender"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "SendRawEmail")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("Throttling", 400, "Maximum sending rate exceeded."), TransientEmailError),
        (client_error("ServiceUnavailable", 503), TransientEmailError),
        (client_error("InternalFailure", 500), TransientEmailError),
        (client_error("SomethingNew", 502), TransientEmailError),
        (client_error("TooManyRequestsException", 429), TransientEmailError),
        (
            client_error("MessageRejected", 400, "Email address is not verified."),
            PermanentEmailError,
        ),
        (client_error("MailFromDomainNotVerifiedException", 400), PermanentEmailError),
        (client_error("AccountSendingPausedException", 400), PermanentEmailError),
        (client_error("ConfigurationSetDoesNotExist", 400), PermanentEmailError),
        (client_error("InvalidParameterValue", 400), PermanentEmailError),
        (client_error("AccessDenied", 403), PermanentEmailError),
        (
            EndpointConnectionError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
            TransientEmailError,
        ),
        (
            ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com"),
            TransientEmailError,
        ),
        (NoCredentialsError(), PermanentEmailError),
    ],
)
def test_ses_errors_map_to_transient_or_permanent(
    error: Exception, expected: type[Exception]
) -> None:
    mapped = classify_ses_error(error)
    assert type(mapped) is expected
    if isinstance(error, ClientError):
        assert mapped.code == error.response["Error"]["Code"]
        assert error.response["Error"]["Code"] in str(mapped)


@pytest.mark.skipif(
    not (os.environ.get("SES_TEST_REGION") and os.environ.get("SES_TEST_SENDER")),
    reason="SES_TEST_REGION and SES_TEST_SENDER (a verified identity) are not set",
)
async def test_ses_sends_to_the_mailbox_simulator() -> None:
    credentials = await asyncio.to_thread(boto3.session.Session().get_credentials)
    if credentials is None:
        pytest.skip("no AWS credentials")
    backend = SesBackend(os.environ["SES_TEST_REGION"])
    try:
        message = build_message(
            os.environ["SES_TEST_SENDER"], "success@simulator.amazonses.com", rendered(), DOMAIN
        )
        assert await backend.send(message)
        bounce = build_message(
            os.environ["SES_TEST_SENDER"], "bounce@simulator.amazonses.com", rendered(), DOMAIN
        )
        assert await backend.send(bounce)  # accepted now; the bounce arrives later
    finally:
        await backend.close()


# -- Factory ---------------------------------------------------------------------------------


async def test_factory_defaults_to_an_outbox_under_the_data_dir(tmp_path: Path) -> None:
    backend = open_email_backend("outbox", data_dir=tmp_path)
    msgid = await backend.send(build_message(SENDER, "ann@example.com", rendered(), DOMAIN))
    (written,) = files_in(outbox_directory(tmp_path))
    assert str(parse(written.read_bytes())["Message-ID"]) == msgid


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (None, "smtp_url is required"),
        ("http://user:hunter2@host", "scheme must be smtp or smtps"),
        ("smtp://user:hunter2@host:99999", "port"),
        ("smtp://user:hunter2@:25", "no host"),
        ("smtp://user:hunter2@host?starttls=maybe", "starttls must be true or false"),
        ("smtps://user:hunter2@host?starttls=true", "already uses TLS"),
        ("smtp://user:hunter2@host?tls=1", "unknown options ['tls']"),
        ("smtp://user:hunter2@host?timeout=-1", "timeout"),
        ("smtp://user@host", "both a user and a password"),
    ],
)
def test_factory_refuses_bad_smtp_urls_without_echoing_secrets(
    url: str | None, complaint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        open_email_backend("smtp", data_dir=Path("unused"), smtp_url=url)
    assert complaint in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_factory_builds_smtp_and_ses_backends() -> None:
    smtps = open_email_backend("smtp", data_dir=Path("unused"), smtp_url="smtps://u:p@mail.test")
    assert repr(smtps) == "SmtpBackend(host='mail.test', port=465)"
    submission = open_email_backend("smtp", data_dir=Path("x"), smtp_url="smtp://h?starttls=true")
    assert repr(submission) == "SmtpBackend(host='h', port=587)"
    plain = open_email_backend("smtp", data_dir=Path("x"), smtp_url="smtp://h")
    assert repr(plain) == "SmtpBackend(host='h', port=25)"
    ses = open_email_backend("ses", data_dir=Path("unused"), ses_region="eu-west-1")
    assert isinstance(ses, SesBackend)
    assert ses.region == "eu-west-1"
    with pytest.raises(ConfigError, match="ses_region is required"):
        open_email_backend("ses", data_dir=Path("unused"))
