"""The application's exceptions, raised by domain code and translated at the edges.

The REST middleware turns an ``AppError`` into ``{"error": {"code", "message", "details"}}``
with its ``status``; the WebSocket layer turns it into a close code.

    PocdojoError
    ├── ConfigError                 settings missing or invalid (startup only)
    └── AppError                    a request cannot be served
        ├── BadRequest          400 malformed input (bad JSON, bad query parameter)
        ├── Unauthorized        401 missing, expired, forged or revoked credentials
        ├── Forbidden           403 authenticated but not allowed
        │   └── QuotaExceeded   403 the tenant's plan limit is reached
        ├── NotFound            404 absent, or belongs to another tenant
        ├── MethodNotAllowed    405
        ├── Conflict            409 duplicate or state conflict
        ├── Gone                410 existed, but is over for good (an ended dojo session)
        ├── PayloadTooLarge     413
        ├── UnsupportedMedia    415
        ├── ValidationFailed    422 well-formed but breaks a rule
        ├── RateLimited         429 carries ``retry_after`` seconds
        └── Unavailable         503 a dependency is down
"""

from __future__ import annotations

from typing import Any


class PocdojoError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(PocdojoError):
    """Settings are missing or invalid; raised at startup with the variable's name."""


class AppError(PocdojoError):
    """A request that cannot be served; ``status`` and ``code`` say why."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"


class NotFound(AppError):
    status = 404
    code = "not_found"


class MethodNotAllowed(AppError):
    status = 405
    code = "method_not_allowed"


class Conflict(AppError):
    status = 409
    code = "conflict"


class Gone(AppError):
    status = 410
    code = "gone"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class UnsupportedMedia(AppError):
    status = 415
    code = "unsupported_media_type"


class ValidationFailed(AppError):
    status = 422
    code = "validation_failed"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = max(1, retry_after)


class Unavailable(AppError):
    status = 503
    code = "unavailable"
