"""Fixtures shared by the job tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.jobs.smtp_helpers import RecordingHandler, SmtpServer, authenticate
from tests.servers import free_port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on a loopback port; offers AUTH without TLS (loopback only)."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield SmtpServer(handler, port)
    finally:
        controller.stop()
