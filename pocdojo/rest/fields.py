"""Field types shared by request bodies: each rule is written once, here."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Literal

from pydantic import AfterValidator, EmailStr, Field, StringConstraints

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


def _no_control_chars(value: str) -> str:
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise ValueError("must not contain control characters")
    return value


def _lower(value: str) -> str:
    return value.lower()


def _email_length(value: str) -> str:
    if len(value) > 100:
        raise ValueError("email must be at most 100 characters")
    return value


Password = Annotated[str, Field(min_length=8, max_length=128), AfterValidator(_password_policy)]
Username = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,49}$"),
    Field(description="3-50 characters: letters, digits, '.', '_' or '-'"),
]
FullName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_no_control_chars),
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
]
