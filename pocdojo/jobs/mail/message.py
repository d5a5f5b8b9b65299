"""Email messages built from a rendered template, one per recipient.

Each recipient gets a message of their own: nobody sees who else received it (no long To
line, no Bcc handling), and a refusal or a retry concerns exactly one address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

from pocdojo.jobs.mail.templates import RenderedEmail

_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, as bare addresses for the transport."""

    sender: str
    recipients: list[str]


def build_message(
    sender: str,
    recipient: str,
    rendered: RenderedEmail,
    message_id_domain: str,
    *,
    reply_to: str | None = None,
) -> EmailMessage:
    """A multipart/alternative (text, then HTML) message to one recipient.

    Display names and subjects may be any Unicode; international domains are sent in their
    ASCII (IDNA) form. A non-ASCII local part makes the message need SMTPUTF8.

    Args:
        sender: ``"Name <address>"`` or a bare address.
        recipient: One address, with or without a display name.
        rendered: Subject and bodies (see ``templates.render_email``).
        message_id_domain: The right-hand side of the Message-ID, e.g. the sender's domain.
        reply_to: Where replies should go, if not to ``sender``.

    Raises:
        ValueError: An address or the domain is invalid, or the subject is not one line.
    """
    from_address, to_address = parse_address(sender), parse_address(recipient)
    utf8 = not (from_address.username.isascii() and to_address.username.isascii())
    message = EmailMessage(policy=policy.default.clone(utf8=utf8))
    message["From"] = from_address
    message["To"] = to_address
    if reply_to is not None:
        message["Reply-To"] = parse_address(reply_to)
    message["Subject"] = rendered.subject  # the email package refuses CR and LF here too
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=_message_id_domain(message_id_domain))
    # RFC 3834: tells auto-responders (vacation replies) not to answer.
    message["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps every line short and 7-bit, whatever the server supports.
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


def parse_address(value: str) -> Address:
    """Exactly one address from ``value``, its domain in ASCII form.

    Raises:
        ValueError: ``value`` holds no address, several, or an invalid domain.
    """
    pairs = getaddresses([value])
    if len(pairs) != 1:
        raise ValueError(f"expected one email address, got {value!r}")
    name, addr_spec = pairs[0]
    username, _, domain = addr_spec.rpartition("@")
    if not username or not domain:
        raise ValueError(f"not an email address: {value!r}")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid domain in {value!r}") from exc
    return Address(display_name=name, username=username, domain=ascii_domain)


def envelope(message: EmailMessage) -> Envelope:
    """The envelope sender (From) and recipients (To, Cc and Bcc) of ``message``.

    Raises:
        ValueError: The message has no From or no recipient.
    """
    senders = getaddresses(message.get_all("From", []))
    recipients = [
        addr_spec
        for header in ("To", "Cc", "Bcc")
        for _, addr_spec in getaddresses(message.get_all(header, []))
        if addr_spec
    ]
    if len(senders) != 1 or not senders[0][1]:
        raise ValueError("the message needs exactly one From address")
    if not recipients:
        raise ValueError("the message has no recipient")
    return Envelope(sender=senders[0][1], recipients=recipients)


def message_bytes(message: EmailMessage) -> bytes:
    """``message`` as RFC 5322 bytes, CRLF line ends, UTF-8 headers only if it needs them."""
    needs_utf8 = getattr(message.policy, "utf8", False)
    return message.as_bytes(policy=policy.SMTPUTF8 if needs_utf8 else policy.SMTP)


def message_id(message: EmailMessage) -> str:
    """The Message-ID of ``message``.

    Raises:
        ValueError: It has none; ``build_message`` always sets one.
    """
    value = message.get("Message-ID")
    if not value:
        raise ValueError("the message has no Message-ID; build it with build_message()")
    return str(value).strip()


def _message_id_domain(domain: str) -> str:
    try:
        ascii_domain = domain.strip().encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid Message-ID domain {domain!r}") from exc
    if not _DOMAIN.fullmatch(ascii_domain):
        raise ValueError(f"invalid Message-ID domain {domain!r}")
    return ascii_domain
