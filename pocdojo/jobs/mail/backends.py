"""Email backends: the protocol, the failures, the three adapters and the factory.

``outbox`` writes ``.eml`` files (the default: nothing leaves the machine), ``smtp`` talks to
any SMTP server, ``ses`` calls Amazon SES. Build messages with ``build_message`` (one per
recipient), send them with ``EmailBackend.send``, and close the backend when done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pocdojo.core.errors import ConfigError
from pocdojo.jobs.mail.delivery import (
    EmailBackend,
    EmailDeliveryError,
    PermanentEmailError,
    TransientEmailError,
)
from pocdojo.jobs.mail.message import build_message
from pocdojo.jobs.mail.outbox import OutboxBackend
from pocdojo.jobs.mail.ses import SesBackend, classify_ses_error
from pocdojo.jobs.mail.smtp import SmtpBackend, classify_smtp_error

__all__ = [
    "EmailBackend",
    "EmailDeliveryError",
    "OutboxBackend",
    "PermanentEmailError",
    "SesBackend",
    "SmtpBackend",
    "TransientEmailError",
    "build_message",
    "classify_ses_error",
    "classify_smtp_error",
    "open_email_backend",
    "outbox_directory",
]

BackendKind = Literal["outbox", "smtp", "ses"]


def outbox_directory(data_dir: Path) -> Path:
    """Where the outbox backend writes under the server's data directory."""
    return data_dir / "outbox" / "email"


def open_email_backend(
    kind: BackendKind,
    *,
    data_dir: Path,
    smtp_url: str | None = None,
    ses_region: str | None = None,
    ses_endpoint_url: str | None = None,
    timeout: float = 30.0,
) -> EmailBackend:
    """The configured backend; nothing connects until the first send.

    Args:
        kind: ``outbox``, ``smtp`` or ``ses``.
        data_dir: The server's data directory (the outbox goes under it).
        smtp_url: For ``smtp``: ``smtp://user:pass@host:587?starttls=true`` or ``smtps://...``.
        ses_region: For ``ses``: the AWS region.
        ses_endpoint_url: For ``ses``: another endpoint, if not the region's.
        timeout: Seconds allowed to connect and for each exchange (smtp, ses).

    Raises:
        ConfigError: The kind is unknown or its setting is missing or invalid.
    """
    if kind == "outbox":
        return OutboxBackend(outbox_directory(data_dir))
    if kind == "smtp":
        if not smtp_url:
            raise ConfigError("smtp_url is required when the email backend is smtp")
        return SmtpBackend.from_url(smtp_url, timeout=timeout)
    if kind == "ses":
        if not ses_region:
            raise ConfigError("ses_region is required when the email backend is ses")
        return SesBackend(ses_region, ses_endpoint_url, timeout=timeout)
    raise ConfigError(f"email_backend must be outbox, smtp or ses, not {kind!r}")
