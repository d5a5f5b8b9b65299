"""The Amazon SES backend: ``SendRawEmail``, run in a thread since boto3 blocks.

botocore already retries throttling and server errors a few times with backoff; what still
fails is classified so the job retries later only what may pass later.
"""

from __future__ import annotations

import asyncio
import threading
from email.message import EmailMessage
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from pocdojo.jobs.mail.delivery import EmailDeliveryError, PermanentEmailError, TransientEmailError
from pocdojo.jobs.mail.message import Envelope, envelope, message_bytes

# Error codes that mean "not now" rather than "not this message"; anything that is neither
# one of these nor an HTTP 429 or 5xx (MessageRejected, MailFromDomainNotVerifiedException,
# AccountSendingPausedException, InvalidParameterValue, AccessDenied, ...) is permanent.
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class SesBackend:
    """Sends through Amazon SES with the default AWS credential chain.

    Args:
        region: The SES region, e.g. ``eu-west-1``.
        endpoint_url: Another endpoint speaking the SES API (a VPC endpoint, an emulator).
        timeout: Seconds allowed to connect and to read each response.
        configuration_set: SES configuration set for event publishing, if any.
    """

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        *,
        timeout: float = 30.0,
        configuration_set: str | None = None,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._timeout = timeout
        self._configuration_set = configuration_set
        self._client: Any = None
        self._client_lock = threading.Lock()  # the client is created in a worker thread

    def __repr__(self) -> str:
        return f"SesBackend(region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    async def send(self, message: EmailMessage) -> str:
        """Send ``message``; returns the id SES gives it (SES replaces the Message-ID).

        Raises:
            TransientEmailError: Throttling, SES errors on its side, network failures.
            PermanentEmailError: Rejected message, unverified sender, paused account,
                invalid request, missing credentials.
        """
        addresses = envelope(message)
        data = message_bytes(message)
        try:
            response = await asyncio.to_thread(self._send_raw, addresses, data)
        except (ClientError, BotoCoreError) as exc:
            raise classify_ses_error(exc) from exc
        return str(response["MessageId"])

    async def close(self) -> None:
        """Close the client's HTTP connections."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    def _send_raw(self, addresses: Envelope, data: bytes) -> Any:
        request: dict[str, Any] = {
            "Source": addresses.sender,
            "Destinations": addresses.recipients,
            "RawMessage": {"Data": data},
        }
        if self._configuration_set is not None:
            request["ConfigurationSetName"] = self._configuration_set
        return self._get_client().send_raw_email(**request)

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                # A session per backend: boto3's default session is not thread-safe.
                self._client = boto3.session.Session().client(
                    "ses",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        connect_timeout=self._timeout,
                        read_timeout=self._timeout,
                        retries={"mode": "standard", "max_attempts": 3},
                    ),
                )
            return self._client


def classify_ses_error(exc: BaseException) -> EmailDeliveryError:
    """Whether a boto3 failure of ``SendRawEmail`` is worth retrying, as the error to raise."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        text = f"ses: {code}: {error.get('Message', '')}".rstrip(": ")
        if code in _TRANSIENT_CODES or status == 429 or status >= 500:
            return TransientEmailError(text, code=code)
        return PermanentEmailError(text, code=code)
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return TransientEmailError(f"ses unreachable: {exc}")
    # No credentials, no region, invalid parameters: configuration, not luck.
    return PermanentEmailError(f"ses: {exc}")
