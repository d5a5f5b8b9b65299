"""Access tokens are verified once per token, and the cache of verified tokens never lets an
expired, forged or altered token through."""

from __future__ import annotations

import types
import uuid
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from pocdojo.core import security
from pocdojo.core.errors import Unauthorized
from pocdojo.core.security import AccessTokens
from pocdojo.core.settings import Settings
from tests.conftest import TEST_JWT_SECRET


@pytest.fixture
def tokens() -> AccessTokens:
    return AccessTokens(Settings(jwt_secret=SecretStr(TEST_JWT_SECRET), access_token_ttl=60))


def issue(tokens: AccessTokens) -> str:
    return tokens.issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="user", session_id=uuid.uuid4()
    )


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature PyJWT checked, in order."""
    checked: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return checked


def test_a_token_is_verified_once_for_many_requests(
    tokens: AccessTokens, verifications: list[str]
) -> None:
    token, other = issue(tokens), issue(tokens)

    first = tokens.decode(token)
    assert [tokens.decode(token) for _ in range(3)] == [first] * 3
    tokens.decode(other)

    assert verifications == [token, other]


def test_a_verified_token_is_refused_once_it_expires(
    tokens: AccessTokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = issue(tokens)
    claims = tokens.decode(token)

    monkeypatch.setattr(security, "time", types.SimpleNamespace(time=lambda: claims.expires_at))
    with pytest.raises(Unauthorized) as refused:
        tokens.decode(token)

    assert refused.value.code == "token_expired"
    # Logging out accepts an expired token; that path checks the signature itself.
    assert tokens.decode(token, verify_exp=False) == claims


def test_an_altered_copy_of_a_verified_token_is_refused(tokens: AccessTokens) -> None:
    token = issue(tokens)
    tokens.decode(token)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    other_claims = issue(tokens).split(".")[1]

    for forged in (f"{head}.{payload}.{flipped}", f"{head}.{other_claims}.{signature}"):
        with pytest.raises(Unauthorized) as refused:
            tokens.decode(forged)
        assert refused.value.code == "invalid_token"


def test_a_refused_token_is_checked_again_every_time(
    tokens: AccessTokens, verifications: list[str]
) -> None:
    forged = jwt.encode({"typ": "access"}, "another-secret-" + "y" * 40, algorithm="HS256")

    for _ in range(2):
        with pytest.raises(Unauthorized):
            tokens.decode(forged)

    assert verifications == [forged, forged]
