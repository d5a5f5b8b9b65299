"""Making bad tokens: expired, signed with another key or none, tampered, of another kind."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

from tests.conftest import TEST_JWT_SECRET

WRONG_SECRET = "not-the-server-secret-" + "z" * 40


def claims_of(token: str) -> dict[str, Any]:
    """A token's claims, read without checking anything."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def signed(claims: dict[str, Any], secret: str = TEST_JWT_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """``alg: none``, with an empty signature."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def tampered(token: str, **changes: Any) -> str:
    """The token with its claims changed and its signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{_b64({**claims_of(token), **changes})}.{signature}"


def expired(token: str) -> str:
    """The token's claims, signed by the server's key, past their expiry."""
    now = int(time.time())
    return signed({**claims_of(token), "iat": now - 3600, "exp": now - 60})
