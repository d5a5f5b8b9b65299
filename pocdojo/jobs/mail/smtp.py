"""The SMTP backend (aiosmtplib): one connection, opened on first send and reused.

A job opens the backend, sends its messages over one connection and closes it. Any failure
drops the connection, so the next send starts from a fresh one.
"""

from __future__ import annotations

import asyncio
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib
import structlog

from pocdojo.core.errors import ConfigError
from pocdojo.jobs.mail.delivery import EmailDeliveryError, PermanentEmailError, TransientEmailError
from pocdojo.jobs.mail.message import message_id

log = structlog.get_logger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SmtpBackend:
    """Sends through an SMTP server.

    Args:
        host: The server's name or address.
        port: Its port (465 for implicit TLS, 587 for submission with STARTTLS, 25).
        username: Log in as this user (needs ``password``).
        password: The user's password.
        use_tls: Speak TLS from the start (``smtps``).
        start_tls: Upgrade with STARTTLS: always (True), never (False), or if offered (None).
        timeout: Seconds allowed for connecting and for each command.
        local_hostname: Name given in EHLO; by default the machine's fully qualified name.
        tls_context: Trust settings for TLS, e.g. a private certificate authority.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if use_tls and start_tls:
            raise ValueError("use_tls and start_tls exclude each other")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self.host, self.port = host, port
        self._username, self._password = username, password
        self._use_tls, self._start_tls = use_tls, start_tls
        self._timeout = timeout
        self._local_hostname = local_hostname
        self._tls_context = tls_context
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()  # one SMTP transaction at a time on the connection

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> SmtpBackend:
        """A backend for ``smtp://[user:pass@]host[:port][?starttls=true|false&timeout=s]``.

        ``smtps://`` means TLS from the start (port 465 by default). Without ``starttls``, the
        connection is upgraded if the server offers it. User and password are URL-decoded.

        Raises:
            ConfigError: The URL is malformed; the message never repeats the password.
        """
        return _parse_smtp_url(url, timeout)

    def __repr__(self) -> str:
        return f"SmtpBackend(host={self.host!r}, port={self.port})"

    async def send(self, message: EmailMessage) -> str:
        """Send ``message``; returns its Message-ID.

        Raises:
            TransientEmailError: 4xx replies, refused or lost connections, timeouts.
            PermanentEmailError: 5xx replies, all recipients refused for good, missing server
                features (STARTTLS, SMTPUTF8), untrusted certificates.
        """
        msgid = message_id(message)
        async with self._lock:
            try:
                client = await self._connected()
                refused, _ = await client.send_message(message)
            except (aiosmtplib.SMTPException, OSError) as exc:
                await self._drop()
                raise classify_smtp_error(exc) from exc
        if refused:
            # Only possible with several recipients in one message, which build_message
            # never makes; the others got it, so this is not a failure of the send.
            log.warning("smtp server refused some recipients", refused=sorted(refused))
        return msgid

    async def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        async with self._lock:
            client, self._client = self._client, None
            if client is None or not client.is_connected:
                return
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self._username,
            password=self._password,
            use_tls=self._use_tls,
            start_tls=self._start_tls,
            timeout=self._timeout,
            local_hostname=self._local_hostname,
            tls_context=self._tls_context,
        )
        await client.connect()  # also STARTTLS and login, as configured
        self._client = client
        return client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            client.close()


def classify_smtp_error(exc: BaseException) -> EmailDeliveryError:
    """Whether an aiosmtplib (or socket) failure is worth retrying, as the error to raise.

    Reply codes decide when there are some (4xx transient, 5xx permanent); connection
    failures and timeouts are transient; a server lacking a required feature and an
    untrusted certificate are permanent, since only a configuration change helps.
    """
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        listed = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        kind = (
            TransientEmailError if all(_transient_code(c) for c in codes) else PermanentEmailError
        )
        return kind(f"recipients refused: {listed}", code=codes[0] if codes else None)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        kind = TransientEmailError if _transient_code(exc.code) else PermanentEmailError
        return kind(f"smtp server replied {exc.code} {exc.message}", code=exc.code)
    if _caused_by(exc, ssl.SSLCertVerificationError):
        return PermanentEmailError(f"the smtp server's certificate is not trusted: {exc}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentEmailError(f"the smtp server lacks a feature: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException) and not isinstance(
        exc, ConnectionError | TimeoutError
    ):
        return PermanentEmailError(f"smtp error: {exc}")
    # Timeouts and connections refused, reset or lost, raw or wrapped by aiosmtplib.
    return TransientEmailError(f"smtp connection failed: {exc}")


def _transient_code(code: int) -> bool:
    # 4xx means "try again"; anything but 4xx and 5xx is a garbled reply a retry may fix.
    return not 500 <= code < 600


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, kind):
            return True
        current = current.__cause__ or current.__context__
    return False


def _parse_smtp_url(url: str, timeout: float) -> SmtpBackend:
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"}:
        raise ConfigError(f"smtp_url: the scheme must be smtp or smtps, not {parts.scheme!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError("smtp_url: the port is not a number from 0 to 65535") from exc
    if not parts.hostname:
        raise ConfigError("smtp_url: no host")
    use_tls = parts.scheme == "smtps"
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"starttls", "timeout"}
    if unknown:
        raise ConfigError(f"smtp_url: unknown options {sorted(unknown)}; known: starttls, timeout")
    start_tls = _flag(options["starttls"]) if "starttls" in options else None
    if use_tls and start_tls:
        raise ConfigError("smtp_url: smtps already uses TLS; drop starttls=true")
    if "timeout" in options:
        timeout = _seconds(options["timeout"])
    if port is None:
        port = 465 if use_tls else 587 if start_tls else 25
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None):
        raise ConfigError("smtp_url: give both a user and a password, or neither")
    return SmtpBackend(
        parts.hostname,
        port,
        username=username,
        password=password,
        use_tls=use_tls,
        start_tls=start_tls,
        timeout=timeout,
    )


def _flag(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"smtp_url: starttls must be true or false, not {value!r}")


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 3600:
        raise ConfigError(f"smtp_url: timeout must be a number of seconds, not {value!r}")
    return seconds
