"""The object store on a local folder, with download links the server signs itself.

A link is ``{public_base_url}/v1/files/{key}?expires=…&sig=…[&filename=…][&type=…]``; the
route behind it calls ``verify`` with the query's values and serves ``path_for(key)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode, urlsplit

from pocdojo.core.errors import ConfigError, Conflict, Forbidden, NotFound
from pocdojo.core.objectstore.keys import (
    validate_content_type,
    validate_expires_in,
    validate_filename,
    validate_key,
)

FILES_PATH = "/v1/files/"
MIN_SECRET_BYTES = 16
_COPY_CHUNK = 1024 * 1024
# Reusing the server's secret for links must not let a link's signature pass as anything else.
_LINK_KEY_CONTEXT = b"pocdojo object store download links v1"


class FilesystemStore:
    """Objects as files under ``root``, one file per key, each replaced atomically.

    Writes go to a temporary file in the target's folder, are flushed to disk and then
    renamed over the target, so a reader sees the old file or the new one, never a mix.
    Content types are not stored: a link carries the type it was asked for.
    """

    def __init__(self, root: Path, signing_secret: bytes, public_base_url: str) -> None:
        """Open (and create) the folder.

        Args:
            root: the folder holding the objects.
            signing_secret: at least 16 bytes; links are signed with a key derived from it.
            public_base_url: ``http(s)://host[:port][/path]`` the links start with.

        Raises:
            ConfigError: for a short secret or a base URL that is not http(s).
        """
        if len(signing_secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"the object store's signing secret must be at least {MIN_SECRET_BYTES} bytes"
            )
        base = public_base_url.rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError(f"public base URL {public_base_url!r} must be http(s)://host[/path]")
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._base = base
        self._link_key = hmac.new(signing_secret, _LINK_KEY_CONTEXT, hashlib.sha256).digest()

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (it may not exist), for a route to serve.

        Resolving symbolic links takes a few ``stat`` calls on the filesystem.

        Raises:
            ValidationFailed: for an invalid key.
            Forbidden: when the path leaves the root, e.g. through a symbolic link.
        """
        validate_key(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise Forbidden("object key leads outside the store", code="key_outside_store")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` atomically (``content_type`` is only validated)."""
        validate_key(key)
        validate_content_type(content_type)
        await asyncio.to_thread(self._write, key, lambda out: out.write(data))

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Copy the file at ``path`` under ``key`` atomically, a megabyte at a time."""
        validate_key(key)
        validate_content_type(content_type)

        def copy(out: BinaryIO) -> None:
            with path.open("rb") as src:
                shutil.copyfileobj(src, out, _COPY_CHUNK)

        await asyncio.to_thread(self._write, key, copy)

    async def get(self, key: str) -> bytes:
        """The stored bytes.

        Raises:
            NotFound: when no object is stored under ``key``.
        """
        validate_key(key)
        try:
            return await asyncio.to_thread(lambda: self.path_for(key).read_bytes())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("object not found", code="object_not_found") from None

    async def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        validate_key(key)
        return await asyncio.to_thread(lambda: self.path_for(key).is_file())

    async def delete(self, key: str) -> None:
        """Remove the file if there is one (folders left empty stay; they cost nothing)."""
        validate_key(key)

        def unlink() -> None:
            # A folder under this key holds other keys, so there is no object to delete.
            with contextlib.suppress(IsADirectoryError, NotADirectoryError):
                self.path_for(key).unlink(missing_ok=True)

        await asyncio.to_thread(unlink)

    async def download_url(
        self,
        key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A link to the ``/v1/files/`` route, signed over key, expiry, filename and type."""
        validate_key(key)
        validate_expires_in(expires_in)
        if filename is not None:
            validate_filename(filename)
        if content_type is not None:
            validate_content_type(content_type)
        expires = int(time.time()) + expires_in
        query = {"expires": str(expires), "sig": self._sign(key, expires, filename, content_type)}
        if filename is not None:
            query["filename"] = filename
        if content_type is not None:
            query["type"] = content_type
        path = quote(key, safe="/")
        return f"{self._base}{FILES_PATH}{path}?{urlencode(query, quote_via=quote)}"

    def verify(
        self,
        key: str,
        expires: int | str,
        sig: str,
        filename: str | None = None,
        content_type: str | None = None,
        now: float | None = None,
    ) -> None:
        """Accept a link's values as this store signed them, before ``expires``.

        Args:
            key, expires, sig, filename, content_type: the link's path key and query values,
                decoded, with None for an absent ``filename`` or ``type``.
            now: the current unix time; the clock by default.

        Raises:
            Forbidden: code ``invalid_signature`` when any value differs from what was signed,
                code ``link_expired`` when the link was genuine but its time is up.
        """
        try:
            expires_at = int(expires)
        except (TypeError, ValueError):
            raise Forbidden("invalid download link", code="invalid_signature") from None
        expected = self._sign(key, expires_at, filename, content_type).encode("ascii")
        if not hmac.compare_digest(expected, sig.encode("utf-8", "replace")):
            raise Forbidden("invalid download link", code="invalid_signature")
        if (time.time() if now is None else now) >= expires_at:
            raise Forbidden("link expired", code="link_expired")

    async def close(self) -> None:
        """Nothing to release."""

    def _sign(self, key: str, expires: int, filename: str | None, content_type: str | None) -> str:
        # JSON keeps the fields apart whatever they contain, and ASCII escapes keep it encodable.
        message = json.dumps([key, expires, filename, content_type], ensure_ascii=True)
        return hmac.new(self._link_key, message.encode("ascii"), hashlib.sha256).hexdigest()

    def _write(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        """Write through ``fill`` into a temporary file, then rename it over the target."""
        target = self.path_for(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise _collision(key) from None
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".put-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            if isinstance(exc, IsADirectoryError):
                raise _collision(key) from None
            raise
        _fsync_dir(target.parent)


def _collision(key: str) -> Conflict:
    return Conflict(
        f"object key {key!r} collides with a folder or file of another key",
        code="key_collision",
    )


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (the file's data already is)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
