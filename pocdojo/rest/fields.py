"""Field types shared by request bodies: each rule is written once, here."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    EmailStr,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from pocdojo.core.languages import LANGUAGES, canonical_language

Role = Literal["admin", "user", "viewer"]
Plan = Literal["standard", "premium", "enterprise"]


def _password_policy(value: str) -> str:
    missing = [
        what
        for what, ok in (
            ("an uppercase letter", any(c.isupper() for c in value)),
            ("a lowercase letter", any(c.islower() for c in value)),
            ("a number", any(c.isdigit() for c in value)),
            ("a special character", any(not c.isalnum() and not c.isspace() for c in value)),
        )
        if not ok
    ]
    if missing:
        raise ValueError("password must contain " + ", ".join(missing))
    return value


# Bidirectional overrides and isolates can make text display as something else.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _no_control_chars(value: str) -> str:
    # Format characters (Cf) stay allowed, for the zero-width joiners of Indic and Persian
    # names and emoji sequences; control, surrogate, private and unassigned ones do not.
    if any(
        unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") or c in _BIDI_CONTROLS for c in value
    ):
        raise ValueError("must not contain control characters")
    return value


def _lower(value: str) -> str:
    return value.lower()


def _email_length(value: str) -> str:
    if len(value) > 100:
        raise ValueError("email must be at most 100 characters")
    return value


Password = Annotated[
    str,
    Field(
        min_length=8,
        max_length=128,
        description="with an uppercase and a lowercase letter, a number and a special character",
    ),
    AfterValidator(_password_policy),
]
Username = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,49}$"),
    Field(description="3-50 characters: letters, digits, '.', '_' or '-'"),
]
_PLAIN_TEXT = "not blank once trimmed; no control characters"

FullName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_chars),
    Field(description=_PLAIN_TEXT),
]
Email = Annotated[EmailStr, AfterValidator(_email_length)]
Domain = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=4,
        max_length=100,
        pattern=r"^([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
    ),
    AfterValidator(_lower),
    Field(description="a DNS name such as acme.example; unique across tenants"),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_chars),
    Field(description=_PLAIN_TEXT),
]


def _language(value: str) -> str:
    name = canonical_language(value)
    if name is None:
        raise ValueError("unsupported language; GET /v1/languages lists the supported ones")
    return name


def _tags(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in values:
        tag = raw.strip().lower()
        if not tag:
            raise ValueError("tags must not be empty")
        if len(tag) > 50:
            raise ValueError("each tag must be at most 50 characters")
        _no_control_chars(tag)
        seen.setdefault(tag, None)
    return list(seen)


def split_tags(value: Any) -> Any:
    """Query strings give tags as repeated parameters or comma-separated; flatten both."""
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list):
        return value
    flat = [part for v in values for part in str(v).split(",")]
    return _tags(flat)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError("must be an http or https URL")
    return value


PocTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_chars),
    Field(description=_PLAIN_TEXT),
]
Language = Annotated[
    str,
    AfterValidator(_language),
    Field(description=f"one of: {', '.join(LANGUAGES)} (any case)"),
]
Tags = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=50)]],
    Field(min_length=1, max_length=20),
    AfterValidator(_tags),
    Field(
        description="1-20 tags, each at most 50 characters, not blank once trimmed, without "
        "control characters; trimmed, lower-cased, de-duplicated"
    ),
]
RepositoryUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_http_url)
]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000; newlines and tabs stay allowed in free text.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Documentation = Annotated[
    str,
    Field(max_length=200_000, description="markdown; no NUL characters"),
    AfterValidator(_no_nul),
]
Description = Annotated[
    str, Field(max_length=10_000, description="no NUL characters"), AfterValidator(_no_nul)
]
SearchText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_no_control_chars),
    Field(description=_PLAIN_TEXT),
]


def _convertible_to_utc(value: datetime) -> datetime:
    # PostgreSQL keeps timestamps from 4713 BC to 294276 AD, but asyncpg converts each to UTC
    # with Python's datetime first, and that stops at years 1 and 9999: 0001-01-01T00:00+14:00
    # would be in year 0. The same conversion decides here (a naive value is local time).
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise ValueError("must fall between the years 1 and 9999 once converted to UTC") from exc
    return value


_RFC_3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}")


_DATETIME = TypeAdapter(datetime)


def _rfc_3339_text(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # The document says date-time (RFC 3339); pydantic would also take a date alone, a space
    # for the T, or a number for Unix time, as it reads query strings leniently. The text is
    # parsed here: a strict body refuses text handed on from a function validator.
    if isinstance(value, str) and _RFC_3339_START.match(value):
        try:
            value = _DATETIME.validate_python(value)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"]) from exc
    if not isinstance(value, datetime):
        raise ValueError("must be a date-time such as 2024-01-31T12:00:00Z")
    return handler(value)


Timestamp = Annotated[
    datetime,
    WrapValidator(_rfc_3339_text),
    AfterValidator(_convertible_to_utc),
    Field(description="ISO 8601, between the years 1 and 9999 once in UTC"),
]
AwareTimestamp = Annotated[
    AwareDatetime,
    WrapValidator(_rfc_3339_text),
    AfterValidator(_convertible_to_utc),
    Field(description="ISO 8601 with a time zone, between the years 1 and 9999 once in UTC"),
]
