"""Passwords (argon2id), access tokens (JWT) and opaque refresh tokens."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pocdojo.core.errors import Unauthorized
from pocdojo.core.settings import Settings

ROLES = ("admin", "user", "viewer")
_ALGORITHM = "HS256"


class Passwords:
    """argon2id hashing, run off the event loop because it is slow on purpose."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        )
        # Verified against when the user does not exist, so that an unknown name costs the
        # same time as a wrong password.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        """An argon2id hash of ``password``."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a None hash spends the same time and fails."""

        def check() -> bool:
            try:
                return self._hasher.verify(stored_hash or self._decoy, password) and (
                    stored_hash is not None
                )
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says about its bearer."""

    user_id: UUID
    tenant_id: UUID
    role: str
    session_id: UUID
    expires_at: int


class _SignedTokens:
    """HS256 JWTs of one kind (``typ``), issued for ``ttl`` seconds."""

    typ = ""
    what = "token"

    def __init__(self, settings: Settings, ttl: int) -> None:
        self._secret = settings.require_jwt_secret()
        self._issuer = settings.jwt_issuer
        self.ttl = ttl

    def _encode(self, claims: dict[str, str]) -> str:
        now = int(time.time())
        payload = {**claims, "iss": self._issuer, "iat": now, "exp": now + self.ttl}
        return jwt.encode({**payload, "typ": self.typ}, self._secret, algorithm=_ALGORITHM)

    def _decode(self, token: str, required: list[str], *, verify_exp: bool) -> dict[str, Any]:
        """The claims of a valid token of this kind.

        Raises:
            Unauthorized: expired, forged, malformed, or a token of another kind.
        """
        try:
            raw: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=self._issuer,
                options={"require": [*required, "exp", "iss"], "verify_exp": verify_exp},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized(f"{self.what} expired", code="token_expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid {self.what}", code="invalid_token") from exc
        if raw.get("typ") != self.typ:
            raise Unauthorized(f"invalid {self.what}", code="invalid_token")
        return raw

    def _invalid(self) -> Unauthorized:
        return Unauthorized(f"invalid {self.what}", code="invalid_token")


class AccessTokens(_SignedTokens):
    """Short-lived JWTs naming user, tenant, role and login session."""

    typ = "access"
    what = "access token"

    # Tokens verified lately, so a client's every request does not pay for the signature,
    # the JSON and the claim checks again (a sixth of a search request's server CPU, under a
    # profiler). Keyed by the whole token: a forged or altered one is never a hit, and
    # failures are not cached.
    VERIFIED_CACHE_SIZE = 4096

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.access_token_ttl)
        self._verified = functools.lru_cache(maxsize=self.VERIFIED_CACHE_SIZE)(self._verify)

    def issue(self, *, user_id: UUID, tenant_id: UUID, role: str, session_id: UUID) -> str:
        """A signed access token valid for ``ttl`` seconds."""
        return self._encode(
            {"sub": str(user_id), "tid": str(tenant_id), "role": role, "sid": str(session_id)}
        )

    def decode(self, token: str, *, verify_exp: bool = True) -> AccessClaims:
        """Check signature, issuer and expiry.

        Raises:
            Unauthorized: the token is expired, forged or malformed.
        """
        if not verify_exp:
            return self._verify(token, verify_exp=False)
        claims = self._verified(token)
        # As PyJWT decides it (no leeway): expired from the second ``exp`` names.
        if claims.expires_at <= time.time():
            raise Unauthorized(f"{self.what} expired", code="token_expired")
        return claims

    def _verify(self, token: str, *, verify_exp: bool = True) -> AccessClaims:
        raw = self._decode(token, ["sub", "tid", "role", "sid"], verify_exp=verify_exp)
        try:
            if raw["role"] not in ROLES:
                raise ValueError(raw["role"])
            return AccessClaims(
                user_id=UUID(raw["sub"]),
                tenant_id=UUID(raw["tid"]),
                role=raw["role"],
                session_id=UUID(raw["sid"]),
                expires_at=int(raw["exp"]),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._invalid() from exc


@dataclass(frozen=True)
class RefreshToken:
    """An opaque refresh token: ``<tenant id>.<secret>``; only its hash is stored."""

    tenant_id: UUID
    value: str

    @classmethod
    def new(cls, tenant_id: UUID) -> RefreshToken:
        return cls(tenant_id, f"{tenant_id.hex}.{secrets.token_urlsafe(32)}")

    @classmethod
    def parse(cls, value: str) -> RefreshToken:
        """Split off the tenant so the lookup can run under that tenant's RLS.

        Raises:
            Unauthorized: the token is not of our shape.
        """
        head, _, tail = value.partition(".")
        if len(tail) < 32 or len(value) > 200:
            raise Unauthorized("invalid refresh token", code="invalid_token")
        try:
            return cls(UUID(hex=head), value)
        except ValueError as exc:
            raise Unauthorized("invalid refresh token", code="invalid_token") from exc

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.value.encode()).digest()


@dataclass(frozen=True)
class DojoClaims:
    """What a participant token says: who may do what in which dojo session, under which
    login session (the token stops working when that login ends)."""

    user_id: UUID
    tenant_id: UUID
    session_id: UUID
    role: str
    login_session_id: UUID


class ParticipantTokens(_SignedTokens):
    """JWTs handed out on joining a dojo and presented by its sockets (``?token=``)."""

    typ = "dojo"
    what = "participant token"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.participant_token_ttl)

    def issue(
        self, *, user_id: UUID, tenant_id: UUID, session_id: UUID, role: str, login_session_id: UUID
    ) -> str:
        """A signed participant token, bound to the login session it was issued under."""
        return self._encode(
            {
                "sub": str(user_id),
                "tid": str(tenant_id),
                "dsid": str(session_id),
                "role": role,
                "lsid": str(login_session_id),
            }
        )

    def decode(self, token: str) -> DojoClaims:
        """Raises:
        Unauthorized: the token is expired, forged, malformed or not a participant token.
        """
        raw = self._decode(token, ["sub", "tid", "dsid", "role", "lsid"], verify_exp=True)
        try:
            return DojoClaims(
                user_id=UUID(raw["sub"]),
                tenant_id=UUID(raw["tid"]),
                session_id=UUID(raw["dsid"]),
                role=str(raw["role"]),
                login_session_id=UUID(raw["lsid"]),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise self._invalid() from exc
