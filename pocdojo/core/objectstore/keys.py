"""Object keys: the one place that says what a key may be, and the tenant-partitioned layout.

Layout (every key starts with a top folder, then the tenant)::

    tenants/{tenant_id}/users/{user_id}/reports/{report_id}.{ext}
    videos/{tenant_id}/{user_id}/{year}/{video_id}.mp4
    videos/{tenant_id}/{user_id}/thumbnails/{video_id}.jpg
    dojos/{tenant_id}/{session_id}/recordings/{name}

Both stores accept the same keys, so a key that works on a laptop (filesystem) works in
production (S3) and the other way round.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote
from uuid import UUID

from pocdojo.core.errors import ValidationFailed

MAX_KEY_BYTES = 1024
# The longest file name most filesystems take; S3 has no such limit, but a key must fit both.
MAX_SEGMENT_BYTES = 255
# S3 refuses presigned URLs valid for longer than seven days; the filesystem store follows suit.
MAX_EXPIRES_IN = 7 * 24 * 3600

_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CONTENT_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:\s*;\s*{_TOKEN}=(?:{_TOKEN}|\"[ -~]*\"))*")
_TOP_FOLDERS = ("tenants", "videos", "dojos")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def validate_key(key: str) -> str:
    """Return ``key`` if both stores can hold it safely, else raise.

    Refused: empty keys, absolute keys, empty, ``.`` or ``..`` segments, backslashes, control
    characters (NUL included), text that is not valid UTF-8, keys over 1024 bytes and segments
    over 255 bytes.

    Raises:
        ValidationFailed: with code ``invalid_key`` and the reason.
    """

    def refuse(reason: str) -> ValidationFailed:
        return ValidationFailed(f"invalid object key: {reason}", code="invalid_key")

    if not key:
        raise refuse("empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise refuse("not valid UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise refuse(f"longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise refuse("absolute")
    if "\\" in key:
        raise refuse("contains a backslash")
    if _has_control(key):
        raise refuse("contains a control character")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            # Empty segments would make "a//b" and "a/b" one file but two S3 objects.
            raise refuse("empty, '.' or '..' segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise refuse(f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return key


def validate_content_type(content_type: str) -> str:
    """Return ``content_type`` if it is a well-formed media type (it ends up in a header).

    Raises:
        ValidationFailed: with code ``invalid_content_type``.
    """
    if not _CONTENT_TYPE.fullmatch(content_type):
        raise ValidationFailed(
            f"invalid content type: {content_type!r}", code="invalid_content_type"
        )
    return content_type


def validate_filename(filename: str) -> str:
    """Return ``filename`` if it can be offered as a download's name.

    Raises:
        ValidationFailed: with code ``invalid_filename`` for an empty name, a path separator,
            a control character or more than 255 bytes.
    """
    try:
        size = len(filename.encode("utf-8"))
    except UnicodeEncodeError:
        size = MAX_SEGMENT_BYTES + 1
    if (
        not filename
        or size > MAX_SEGMENT_BYTES
        or "/" in filename
        or "\\" in filename
        or _has_control(filename)
    ):
        raise ValidationFailed(f"invalid download filename: {filename!r}", code="invalid_filename")
    return filename


def validate_expires_in(expires_in: int) -> int:
    """Return ``expires_in`` if it is between one second and seven days.

    Raises:
        ValidationFailed: with code ``invalid_expiry``.
    """
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise ValidationFailed(
            f"expires_in must be between 1 and {MAX_EXPIRES_IN} seconds", code="invalid_expiry"
        )
    return expires_in


def content_disposition(filename: str) -> str:
    """A ``Content-Disposition: attachment`` value naming ``filename`` (RFC 6266).

    Old clients read the ASCII ``filename``; others read the exact UTF-8 name from
    ``filename*``. The value is pure ASCII, so it is safe in any header.

    Raises:
        ValidationFailed: when the filename is invalid (see ``validate_filename``).
    """
    validate_filename(filename)
    fallback = "".join(
        ch if " " <= ch <= "~" and ch not in '"\\%' else "_" for ch in filename
    ).strip()
    exact = quote(filename, safe="")
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{exact}"


def _name(value: str, what: str) -> str:
    """A single key segment supplied by a caller (a recording's name)."""
    if "/" in value:
        raise ValidationFailed(f"{what} may not contain '/'", code="invalid_key")
    return value


def report_key(tenant_id: UUID, user_id: UUID, report_id: UUID, ext: str) -> str:
    """Where a generated report lives: under the tenant, then the user who asked for it.

    Args:
        ext: the file extension without the dot, lowercase letters and digits (``pdf``).
    """
    if not _EXTENSION.fullmatch(ext):
        raise ValidationFailed(f"invalid report extension: {ext!r}", code="invalid_key")
    return validate_key(f"tenants/{tenant_id}/users/{user_id}/reports/{report_id}.{ext}")


def video_key(tenant_id: UUID, user_id: UUID, year: int, video_id: UUID) -> str:
    """Where a generated MP4 lives: tenant, user, then the year the video covers."""
    if not 1 <= year <= 9999:
        raise ValidationFailed(f"invalid video year: {year}", code="invalid_key")
    return validate_key(f"videos/{tenant_id}/{user_id}/{year:04d}/{video_id}.mp4")


def replay_video_key(tenant_id: UUID, user_id: UUID, video_id: UUID) -> str:
    """Where the MP4 replay of a dojo recording lives: tenant, then the user who asked."""
    return validate_key(f"videos/{tenant_id}/{user_id}/replays/{video_id}.mp4")


def thumbnail_key(tenant_id: UUID, user_id: UUID, video_id: UUID) -> str:
    """Where the JPEG preview of a video lives."""
    return validate_key(f"videos/{tenant_id}/{user_id}/thumbnails/{video_id}.jpg")


def recording_key(tenant_id: UUID, session_id: UUID, name: str) -> str:
    """Where a recording of a dojo session lives.

    Args:
        name: the file's name within the session's recordings, a single key segment.
    """
    return validate_key(f"dojos/{tenant_id}/{session_id}/recordings/{_name(name, 'name')}")


def tenant_of(key: str) -> UUID | None:
    """The tenant a key built by this module belongs to, or None for any other key."""
    parts = key.split("/", 2)
    if len(parts) < 3 or parts[0] not in _TOP_FOLDERS:
        return None
    try:
        tenant = UUID(parts[1])
    except ValueError:
        return None
    # UUID() also reads braces, "urn:uuid:" and hex without dashes; the helpers write none.
    return tenant if str(tenant) == parts[1] else None
