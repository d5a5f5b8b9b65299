"""The object store on S3, or on any S3-compatible server (SeaweedFS, MinIO, Ceph, R2).

boto3 is blocking, so each call runs in a worker thread; its low-level client is
thread-safe, and one client (with its connection pool) serves the whole store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from pocdojo.core.errors import AppError, ConfigError, NotFound, Unavailable, ValidationFailed
from pocdojo.core.objectstore.keys import (
    MAX_KEY_BYTES,
    content_disposition,
    validate_content_type,
    validate_expires_in,
    validate_key,
)

T = TypeVar("T")

_MiB = 1024 * 1024
# Parts of 8 MiB, four in flight: large videos upload in parallel without holding them in memory.
_TRANSFER = TransferConfig(
    multipart_threshold=8 * _MiB, multipart_chunksize=8 * _MiB, max_concurrency=4
)
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})


class S3Store:
    """Objects in one bucket, under an optional key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        """Make the client; nothing is contacted until the first call.

        Args:
            bucket: an existing bucket (see ``ensure_bucket`` for tests).
            prefix: prepended to every key, e.g. ``pocdojo/``; a missing trailing ``/`` is added.
            endpoint_url, region_name, access_key, secret_key: override what boto3 would read
                from ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID`` and
                ``AWS_SECRET_ACCESS_KEY`` (or its config files).
        """
        if not bucket:
            raise ConfigError("S3 object store: the bucket name is empty")
        prefix = prefix.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except ValidationFailed as exc:
                raise ConfigError(f"S3 object store prefix {prefix!r}: {exc.message}") from None
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        # A session of its own: boto3's default session is not safe to share across threads.
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region_name,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                # Presigned URLs need SigV4 in every region opened since 2014 and on most
                # S3-compatible servers.
                signature_version="s3v4",
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=10,
                read_timeout=60,
            ),
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Store:
        """A store for ``s3://bucket`` or ``s3://bucket/prefix``.

        Args:
            options: passed on to the constructor (``endpoint_url``, credentials, …).

        Raises:
            ConfigError: when the URL is not of that form.
        """
        parts = urlsplit(url)
        if (
            parts.scheme != "s3"
            or not parts.hostname
            or parts.username is not None
            or parts.port is not None
            or parts.query
            or parts.fragment
        ):
            raise ConfigError(f"object store URL {url!r}: use s3://bucket or s3://bucket/prefix")
        # ``netloc`` rather than ``hostname``, which urlsplit lowercases: a misspelt bucket
        # should fail as written.
        return cls(parts.netloc, parts.path, **options)

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (production buckets are made beforehand)."""

        def ensure() -> None:
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _status(exc) != 404:
                    raise
            options: dict[str, Any] = {}
            region = self._client.meta.region_name
            if region and region != "us-east-1":
                options["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                self._client.create_bucket(Bucket=self.bucket, **options)
            except ClientError as exc:
                if _code(exc) != "BucketAlreadyOwnedByYou":
                    raise

        await _call(ensure)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` with its content type, replacing any object under ``key``."""
        name = self._name(key)
        validate_content_type(content_type)
        await _call(
            self._client.put_object,
            Bucket=self.bucket,
            Key=name,
            Body=data,
            ContentType=content_type,
        )

    async def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Upload the file at ``path``, in parallel parts when it is over 8 MiB."""
        name = self._name(key)
        validate_content_type(content_type)
        await _call(
            self._client.upload_file,
            str(path),
            self.bucket,
            name,
            ExtraArgs={"ContentType": content_type},
            Config=_TRANSFER,
        )

    async def get(self, key: str) -> bytes:
        """The object's bytes.

        Raises:
            NotFound: when no object is stored under ``key``.
        """
        name = self._name(key)

        def fetch() -> bytes:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            with contextlib.closing(response["Body"]) as body:
                data: bytes = body.read()
                return data

        return await _call(fetch)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key`` (one HEAD request)."""
        name = self._name(key)
        try:
            await _call(self._client.head_object, Bucket=self.bucket, Key=name)
        except NotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Remove the object; S3 answers the same whether or not it existed."""
        name = self._name(key)
        await _call(self._client.delete_object, Bucket=self.bucket, Key=name)

    async def download_url(
        self,
        key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A presigned GET URL; S3 sets the disposition and type it was signed with."""
        name = self._name(key)
        validate_expires_in(expires_in)
        params: dict[str, str] = {"Bucket": self.bucket, "Key": name}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        if content_type is not None:
            params["ResponseContentType"] = validate_content_type(content_type)
        # Signing is local, but the first call may load credentials (files, instance metadata).
        url: str = await _call(
            self._client.generate_presigned_url,
            "get_object",
            Params=params,
            ExpiresIn=expires_in,
        )
        return url

    async def close(self) -> None:
        """Close the client's connection pool."""
        await asyncio.to_thread(self._client.close)

    def _name(self, key: str) -> str:
        """The bucket's name for ``key``: the prefix, then the key."""
        validate_key(key)
        name = self.prefix + key
        if len(name.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValidationFailed(
                f"invalid object key: longer than {MAX_KEY_BYTES} bytes with the store's prefix",
                code="invalid_key",
            )
        return name


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking boto3 call in a thread; a missing object or an outage as app errors."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except Exception as exc:
        # upload_file wraps the client's error in its own; the cause says what happened.
        cause = exc.__context__ if isinstance(exc, S3UploadFailedError) else exc
        translated = _translate(cause) if isinstance(cause, Exception) else None
        if translated is None:
            raise
        raise translated from exc


def _translate(exc: Exception) -> AppError | None:
    if isinstance(exc, ClientError):
        if _code(exc) in _MISSING_CODES or _status(exc) == 404:
            return NotFound("object not found", code="object_not_found")
        if _status(exc) >= 500:
            return Unavailable(f"object store error: {_code(exc)}", code="object_store_down")
        return None
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return Unavailable("object store unreachable", code="object_store_down")
    return None


def _code(exc: ClientError) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "")
    return code


def _status(exc: ClientError) -> int:
    status: int = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status
