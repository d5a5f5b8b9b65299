"""The outbox backend: each message becomes an ``.eml`` file in a directory.

The default for development and tests: nothing leaves the machine, and any mail client (or
``email.parser``) opens the files. Names start with the UTC time to the microsecond, then a
random part, so they sort by time and two workers never pick the same one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from pocdojo.jobs.mail.delivery import TransientEmailError
from pocdojo.jobs.mail.message import envelope, message_bytes, message_id


class OutboxBackend:
    """Writes each message to ``directory`` as an RFC 5322 file.

    Args:
        directory: Where the files go; created on first use.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"OutboxBackend({str(self.directory)!r})"

    async def send(self, message: EmailMessage) -> str:
        """Write ``message``; returns its Message-ID.

        Raises:
            TransientEmailError: The file could not be written (disk full, permissions).
            ValueError: The message has no Message-ID, From or recipient.
        """
        envelope(message)  # refuse what no real backend could send
        msgid = message_id(message)
        data = message_bytes(message)
        try:
            await asyncio.to_thread(self._write, data)
        except OSError as exc:
            raise TransientEmailError(f"cannot write to the outbox: {exc}") from exc
        return msgid

    async def close(self) -> None:
        """Nothing to release."""

    def _write(self, data: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.directory / f"{stamp}-{secrets.token_hex(8)}.eml"
        # Written under a dot-name then renamed, so a reader never sees half a message.
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target
