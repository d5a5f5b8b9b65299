"""What every email backend offers, and the two ways a send can fail.

    PocdojoError
    └── EmailDeliveryError
        ├── TransientEmailError    try again later (4xx, timeouts, throttling, outages)
        └── PermanentEmailError    retrying cannot help (5xx, rejected message, bad config)

The job retries only transient failures, so a backend must classify every failure it can.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

from pocdojo.core.errors import PocdojoError


class EmailDeliveryError(PocdojoError):
    """A message was not handed over.

    Args:
        message: What went wrong, without credentials.
        code: The server's status (an SMTP reply code, an AWS error code), if it gave one.
    """

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientEmailError(EmailDeliveryError):
    """The send may succeed if tried again later."""


class PermanentEmailError(EmailDeliveryError):
    """The send will fail again however often it is tried."""


class EmailBackend(Protocol):
    """Hands messages over for delivery."""

    async def send(self, message: EmailMessage) -> str:
        """Hand over ``message`` (its From, To, Cc and Bcc are the envelope).

        Returns:
            An id for the message: its Message-ID, or the provider's own id.

        Raises:
            TransientEmailError: Worth retrying later.
            PermanentEmailError: Not worth retrying.
        """
        ...

    async def close(self) -> None:
        """Release connections; the backend may not be used afterwards."""
        ...
