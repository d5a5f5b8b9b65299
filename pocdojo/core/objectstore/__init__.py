"""The object store port: files the jobs produce (reports, videos, recordings), by key.

Two adapters pass the same contract suite (``tests/core/test_objectstore_contract.py``):

- ``FilesystemStore`` (the default) keeps objects under ``{data_dir}/objects`` and signs its
  own download links, which the server's ``/v1/files/{key}`` route checks and serves.
- ``S3Store`` keeps them in an S3 bucket (AWS or any S3-compatible server) and hands out
  S3's presigned URLs.

Keys are built by the helpers re-exported here (``report_key``, ``video_key``, …), which put
every object under its tenant; ``validate_key`` is the one rule both stores apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from pocdojo.core.errors import ConfigError
from pocdojo.core.objectstore.filesystem import FilesystemStore
from pocdojo.core.objectstore.keys import (
    MAX_EXPIRES_IN,
    MAX_KEY_BYTES,
    content_disposition,
    recording_key,
    replay_video_key,
    report_key,
    tenant_of,
    thumbnail_key,
    validate_content_type,
    validate_filename,
    validate_key,
    video_key,
)

if TYPE_CHECKING:
    from pocdojo.core.settings import Settings

__all__ = [
    "MAX_EXPIRES_IN",
    "MAX_KEY_BYTES",
    "FilesystemStore",
    "ObjectStore",
    "content_disposition",
    "open_object_store",
    "open_store",
    "recording_key",
    "replay_video_key",
    "report_key",
    "tenant_of",
    "thumbnail_key",
    "validate_content_type",
    "validate_filename",
    "validate_key",
    "video_key",
]


class ObjectStore(Protocol):
    """Whole objects by key: written atomically, read back, linked to for browsers.

    Every method validates its key with ``validate_key`` (``ValidationFailed`` otherwise). A
    key must not also be a folder of other keys (``a/b`` next to ``a/b/c``); the key helpers
    never produce that, and the filesystem store answers ``Conflict`` to it.
    """

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing any object there; readers see old or new.

        ``content_type`` is kept with the object where the backend has metadata (S3); with
        the filesystem store it is only validated, and a link gets its type from
        ``download_url(content_type=...)``.
        """
        ...

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Like ``put``, streaming the file at ``path`` (it is never read whole into memory)."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's bytes.

        Raises:
            NotFound: when there is no object under ``key``.
        """
        ...

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting an absent key is not an error."""
        ...

    async def download_url(
        self,
        key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """An absolute URL a browser can GET for the next ``expires_in`` seconds (at most 7 days).

        Args:
            filename: when given, the response carries ``Content-Disposition: attachment``
                with this name.
            content_type: when given, the response's ``Content-Type``.
        """
        ...

    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
        ...


def open_store(settings: Settings) -> ObjectStore:
    """The object store ``settings`` name, signing links with a key of its own; the server
    and every worker open the same one, so links one signs the other serves."""
    return open_object_store(
        settings.object_store_url,
        data_dir=settings.data_dir,
        signing_secret=settings.signing_key("object-store"),
        public_base_url=settings.base_url,
    )


def open_object_store(
    url: str | None, *, data_dir: Path, signing_secret: bytes, public_base_url: str
) -> ObjectStore:
    """The store a URL names; nothing is contacted yet.

    Args:
        url: ``None``, empty or ``file://`` for ``data_dir / "objects"``;
            ``file:///absolute/path`` for another folder; ``s3://bucket`` or
            ``s3://bucket/prefix`` for S3, with the endpoint, region and credentials read by
            boto3 from the usual ``AWS_*`` variables and files.
        data_dir: the server's data directory.
        signing_secret: the key the filesystem store signs download links with.
        public_base_url: the server's public URL, the base of the filesystem store's links.

    Raises:
        ConfigError: for a URL of another scheme or without a bucket or with a relative path.
    """
    if not url:
        return FilesystemStore(data_dir / "objects", signing_secret, public_base_url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ConfigError(f"object store URL {url!r}: use file:///absolute/path")
        path = unquote(parts.path)
        if not path:
            return FilesystemStore(data_dir / "objects", signing_secret, public_base_url)
        if not Path(path).is_absolute():
            raise ConfigError(f"object store URL {url!r}: the path must be absolute")
        return FilesystemStore(Path(path), signing_secret, public_base_url)
    if parts.scheme == "s3":
        # boto3 takes a moment to import; only S3 deployments pay for it.
        from pocdojo.core.objectstore.s3 import S3Store

        return S3Store.from_url(url)
    raise ConfigError(f"object store URL {url!r}: the scheme must be file or s3")
