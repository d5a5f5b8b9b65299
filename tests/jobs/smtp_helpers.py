"""A real SMTP server (aiosmtpd) on a loopback port that records what it accepts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    session: Any


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that keeps what it accepts, or answers with a set reply."""

    received: list[Received] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None
    data_stalls: bool = False

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_stalls:
            await asyncio.Event().wait()  # never answers; stopping the server cancels this
        if self.data_reply is not None:
            return self.data_reply
        message = parse(envelope.original_content)
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, session)
        )
        return "250 Message accepted for delivery"

    def connections(self) -> int:
        return len({id(r.session) for r in self.received})


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alice", b"s:cret")
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int
