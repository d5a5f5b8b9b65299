"""The object store port's contract, run against both adapters.

The filesystem store writes under the test's folder; its links are fetched from a small
server that checks them with ``verify`` and serves ``path_for``, as the real route does. The
S3 store talks to a real S3 server (SeaweedFS, see ``pocdojo/core/s3server.py``), each test under a
key prefix of its own, and its presigned URLs are fetched over HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
from uuid import UUID, uuid4

import aiohttp
import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from yarl import URL

from pocdojo.core.errors import (
    AppError,
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from pocdojo.core.netports import free_ports
from pocdojo.core.objectstore import (
    FilesystemStore,
    ObjectStore,
    content_disposition,
    open_object_store,
    recording_key,
    report_key,
    tenant_of,
    thumbnail_key,
    video_key,
)
from pocdojo.core.objectstore.s3 import S3Store
from pocdojo.core.s3server import SeaweedS3

SECRET = b"object-store-contract-signing-secret"
BUCKET = "pocdojo-contract"
MiB = 1024 * 1024


@dataclass
class Adapter:
    """A store, and the names its links give the signature, expiry and filename."""

    name: str
    store: ObjectStore
    signature_param: str
    expiry_param: str
    filename_param: str


def _file_server_app(box: list[FilesystemStore]) -> web.Application:
    """What the ``/v1/files/`` route does with the store's API, to fetch links for real."""

    async def serve(request: web.Request) -> web.StreamResponse:
        store, key, query = box[0], request.match_info["key"], request.query
        try:
            store.verify(
                key,
                query.get("expires", ""),
                query.get("sig", ""),
                query.get("filename"),
                query.get("type"),
            )
            path = store.path_for(key)
        except AppError as exc:
            return web.json_response({"code": exc.code}, status=exc.status)
        if not path.is_file():
            return web.json_response({"code": "not_found"}, status=404)
        headers = {}
        if "type" in query:
            headers["Content-Type"] = query["type"]
        if "filename" in query:
            headers["Content-Disposition"] = content_disposition(query["filename"])
        return web.FileResponse(path, headers=headers)

    app = web.Application()
    app.router.add_get("/v1/files/{key:.+}", serve)
    return app


@pytest.fixture(params=["filesystem", "s3"])
async def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Adapter]:
    if request.param == "filesystem":
        box: list[FilesystemStore] = []
        server = TestServer(_file_server_app(box))
        await server.start_server()
        box.append(FilesystemStore(tmp_path / "objects", SECRET, str(server.make_url("/"))))
        try:
            yield Adapter("filesystem", box[0], "sig", "expires", "filename")
        finally:
            await box[0].close()
            await server.close()
        return
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    store = _s3_store(seaweed, f"test-{uuid4().hex}")
    try:
        await store.ensure_bucket()
        yield Adapter(
            "s3", store, "X-Amz-Signature", "X-Amz-Expires", "response-content-disposition"
        )
    finally:
        await store.close()


def _s3_store(seaweed: SeaweedS3, prefix: str) -> S3Store:
    return S3Store(
        BUCKET,
        prefix,
        endpoint_url=seaweed.endpoint_url,
        region_name=seaweed.region,
        access_key=seaweed.access_key,
        secret_key=seaweed.secret_key,
    )


async def fetch(url: str) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    """GET a link exactly as given (a presigned URL must not be re-encoded)."""
    async with aiohttp.ClientSession() as session, session.get(URL(url, encoded=True)) as resp:
        return resp.status, await resp.read(), resp.headers


def with_query(url: str, name: str, value: str) -> str:
    """``url`` with one query value replaced."""
    parts = urlsplit(url)
    query = [(k, value if k == name else v) for k, v in parse_qsl(parts.query)]
    assert any(k == name for k, _ in query), f"{name} not in {url}"
    return urlunsplit(parts._replace(query=urlencode(query)))


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``, a megabyte at a time; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // MiB):
            chunk = os.urandom(MiB)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


# --- the contract ------------------------------------------------------------------------


async def test_round_trip_bytes(adapter: Adapter) -> None:
    store, data = adapter.store, os.urandom(70_000)
    assert not await store.exists("a/b/c.bin")
    await store.put("a/b/c.bin", data, "application/octet-stream")
    assert await store.exists("a/b/c.bin")
    assert await store.get("a/b/c.bin") == data
    await store.put("a/b/empty", b"", "text/plain")
    assert await store.get("a/b/empty") == b""


async def test_put_file_round_trips_a_large_file(adapter: Adapter, tmp_path: Path) -> None:
    source = tmp_path / "video.mp4"
    digest = random_file(source, 20 * MiB)
    await adapter.store.put_file("videos/large.mp4", source, "video/mp4")
    assert hashlib.sha256(await adapter.store.get("videos/large.mp4")).hexdigest() == digest


async def test_put_file_does_not_read_the_file_into_memory(
    adapter: Adapter, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    random_file(source, 48 * MiB)
    tracemalloc.start()
    try:
        await adapter.store.put_file("big.bin", source, "application/octet-stream")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB, f"{adapter.name} held {peak / MiB:.1f} MiB for a 48 MiB file"
    assert await adapter.store.exists("big.bin")


async def test_overwrite_replaces_the_object(adapter: Adapter, tmp_path: Path) -> None:
    store = adapter.store
    await store.put("k/obj", b"first version", "text/plain")
    await store.put("k/obj", b"second", "text/plain")
    assert await store.get("k/obj") == b"second"
    source = tmp_path / "third"
    source.write_bytes(b"third, from a file")
    await store.put_file("k/obj", source, "text/plain")
    assert await store.get("k/obj") == b"third, from a file"


async def test_readers_see_whole_objects_while_it_is_replaced(adapter: Adapter) -> None:
    store, old, new = adapter.store, b"o" * (2 * MiB), b"n" * (3 * MiB)
    await store.put("swap", old, "application/octet-stream")
    writes = [store.put("swap", (new, old)[i % 2], "application/octet-stream") for i in range(6)]
    reads = [store.get("swap") for _ in range(12)]
    results = await asyncio.gather(*writes, *reads)
    seen = [r for r in results if isinstance(r, bytes)]
    assert len(seen) == 12
    assert all(r in (old, new) for r in seen), sorted({len(r) for r in seen})


async def test_delete_is_idempotent(adapter: Adapter) -> None:
    store = adapter.store
    await store.put("gone/soon", b"x", "text/plain")
    await store.put("gone/stays", b"y", "text/plain")
    await store.delete("gone/soon")
    assert not await store.exists("gone/soon")
    with pytest.raises(NotFound):
        await store.get("gone/soon")
    await store.delete("gone/soon")
    await store.delete("never/there")
    assert await store.get("gone/stays") == b"y"


async def test_get_missing_is_not_found(adapter: Adapter) -> None:
    with pytest.raises(NotFound) as caught:
        await adapter.store.get("no/such/object")
    assert caught.value.status == 404
    assert not await adapter.store.exists("no/such/object")
    await adapter.store.put("no/such/object-but-a-sibling", b"1", "text/plain")
    assert not await adapter.store.exists("no/such/object")


UNICODE_KEYS = (
    "unicode/日本語のレポート.pdf",
    "unicode/ü ñ é/straße.txt",
    "unicode/🎬 clip.mp4",
    "unicode/odd +%?#&=;,'\"@!$~.txt",
)


@pytest.mark.parametrize("key", UNICODE_KEYS)
async def test_unicode_keys_round_trip_and_download(adapter: Adapter, key: str) -> None:
    data = key.encode() * 3
    await adapter.store.put(key, data, "text/plain")
    assert await adapter.store.exists(key)
    assert await adapter.store.get(key) == data
    status, body, _ = await fetch(await adapter.store.download_url(key, expires_in=60))
    assert (status, body) == (200, data)


BAD_KEYS = (
    "",
    "/absolute/key",
    "..",
    "a/../b",
    "../escape",
    "a/./b",
    "a//b",
    "trailing/",
    "back\\slash",
    "nul\x00byte",
    "new\nline",
    "del\x7fete",
    "x" * 1025,
    "é" * 513,
    "a/" + "s" * 256,
    "lone\ud800surrogate",
)


async def test_bad_keys_are_refused_by_every_method(adapter: Adapter, tmp_path: Path) -> None:
    store, source = adapter.store, tmp_path / "source"
    source.write_bytes(b"data")
    methods: list[Callable[[str], Awaitable[object]]] = [
        lambda k: store.put(k, b"data", "text/plain"),
        lambda k: store.put_file(k, source, "text/plain"),
        store.get,
        store.exists,
        store.delete,
        lambda k: store.download_url(k, expires_in=60),
    ]
    for key in BAD_KEYS:
        for method in methods:
            with pytest.raises(ValidationFailed) as caught:
                await method(key)
            assert caught.value.code == "invalid_key", repr(key)
    # Long keys that are allowed (with room for the S3 store's test prefix).
    for key in ("x" * 255 + "/" + "y" * 255, "/".join(["é" * 90] * 5)):
        await store.put(key, b"ok", "text/plain")
        assert await store.get(key) == b"ok"


async def test_bad_arguments_are_refused(adapter: Adapter) -> None:
    store = adapter.store
    for content_type in ("", "text", "text/plain\r\nX-Evil: 1", "a b/c"):
        with pytest.raises(ValidationFailed):
            await store.put("k", b"", content_type)
        with pytest.raises(ValidationFailed):
            await store.download_url("k", expires_in=60, content_type=content_type)
    for filename in ("", "a/b.pdf", "a\\b.pdf", "a\r\nb.pdf", "x" * 256):
        with pytest.raises(ValidationFailed):
            await store.download_url("k", expires_in=60, filename=filename)
    for expires_in in (0, -5, 7 * 24 * 3600 + 1):
        with pytest.raises(ValidationFailed):
            await store.download_url("k", expires_in=expires_in)
    assert not await store.exists("k")


async def test_download_url_serves_bytes_name_and_type(adapter: Adapter) -> None:
    data, filename = os.urandom(5000), 'Report ü 2024 "final".pdf'
    await adapter.store.put("reports/r1.pdf", data, "application/pdf")
    url = await adapter.store.download_url(
        "reports/r1.pdf", expires_in=300, filename=filename, content_type="application/pdf"
    )
    status, body, headers = await fetch(url)
    assert (status, body) == (200, data)
    assert headers["Content-Disposition"] == content_disposition(filename)
    assert headers["Content-Type"] == "application/pdf"

    status, body, headers = await fetch(
        await adapter.store.download_url("reports/r1.pdf", expires_in=300)
    )
    assert (status, body) == (200, data)
    assert "Content-Disposition" not in headers


async def test_download_url_of_a_large_file(adapter: Adapter, tmp_path: Path) -> None:
    source = tmp_path / "clip.mp4"
    digest = random_file(source, 12 * MiB)
    await adapter.store.put_file("videos/clip.mp4", source, "video/mp4")
    url = await adapter.store.download_url(
        "videos/clip.mp4", expires_in=60, filename="clip.mp4", content_type="video/mp4"
    )
    status, body, headers = await fetch(url)
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == digest
    assert headers["Content-Type"] == "video/mp4"
    assert headers["Content-Disposition"] == 'attachment; filename="clip.mp4"'


async def test_tampered_links_are_refused(adapter: Adapter) -> None:
    secret, other = b"SECRET-CONTENT", b"OTHER-CONTENT"
    await adapter.store.put("t/secret.txt", secret, "text/plain")
    await adapter.store.put("t/other.txt", other, "text/plain")
    url = await adapter.store.download_url("t/secret.txt", expires_in=300, filename="s.txt")
    assert (await fetch(url))[:2] == (200, secret)
    query = dict(parse_qsl(urlsplit(url).query))
    sig, expiry = query[adapter.signature_param], query[adapter.expiry_param]
    # Rewriting the query with unchanged values keeps the link valid: the refusals below are
    # for the changed value, not for how the query was re-encoded.
    assert (await fetch(with_query(url, adapter.expiry_param, expiry)))[:2] == (200, secret)
    forged = [
        url.replace("/t/secret.txt", "/t/other.txt"),
        with_query(url, adapter.signature_param, ("0" if sig[0] != "0" else "1") + sig[1:]),
        with_query(url, adapter.expiry_param, str(int(expiry) + 1000)),
        with_query(url, adapter.filename_param, 'attachment; filename="x.exe"')
        if adapter.name == "s3"
        else with_query(url, "filename", "x.exe"),
    ]
    for link in forged:
        assert link != url
        status, body, _ = await fetch(link)
        assert status == 403, link
        assert secret not in body
        assert other not in body


async def test_expired_links_are_refused(adapter: Adapter) -> None:
    await adapter.store.put("t/brief.txt", b"BRIEF-CONTENT", "text/plain")
    url = await adapter.store.download_url("t/brief.txt", expires_in=1)
    deadline = time.monotonic() + 10
    while True:
        status, body, _ = await fetch(url)
        if status != 200:
            break
        assert body == b"BRIEF-CONTENT"
        assert time.monotonic() < deadline, "the link still works after 10 s"
        await asyncio.sleep(0.2)
    assert status == 403
    assert b"BRIEF-CONTENT" not in body


# --- the filesystem store ----------------------------------------------------------------


@pytest.fixture
def fs(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "objects", SECRET, "https://pocdojo.example/base/")


def _link(url: str) -> tuple[str, dict[str, str]]:
    """The key and query values a route would get from a filesystem link."""
    parts = urlsplit(url)
    prefix = "/base/v1/files/"
    assert parts.path.startswith(prefix), url
    return unquote(parts.path[len(prefix) :]), dict(parse_qsl(parts.query))


async def test_filesystem_links_are_signed_over_every_value(fs: FilesystemStore) -> None:
    url = await fs.download_url(
        "k/ü.pdf", expires_in=600, filename="ü.pdf", content_type="application/pdf"
    )
    assert url.startswith("https://pocdojo.example/base/v1/files/k/%C3%BC.pdf?expires=")
    key, q = _link(url)
    assert key == "k/ü.pdf"
    assert (q["type"], q["filename"]) == ("application/pdf", "ü.pdf")
    expires = int(q["expires"])
    assert time.time() + 590 < expires <= time.time() + 600
    fs.verify(key, q["expires"], q["sig"], q["filename"], q["type"])
    fs.verify(key, expires, q["sig"], q["filename"], q["type"], now=expires - 1)

    forged: list[tuple[str, Any, str, str | None, str | None]] = [
        ("k/u.pdf", expires, q["sig"], q["filename"], q["type"]),
        (key, expires + 1, q["sig"], q["filename"], q["type"]),
        (key, "not a number", q["sig"], q["filename"], q["type"]),
        (key, expires, q["sig"][::-1], q["filename"], q["type"]),
        (key, expires, q["sig"].upper(), q["filename"], q["type"]),
        (key, expires, "é" * 64, q["filename"], q["type"]),
        (key, expires, q["sig"], "x.exe", q["type"]),
        (key, expires, q["sig"], None, q["type"]),
        (key, expires, q["sig"], q["filename"], "text/html"),
        (key, expires, q["sig"], q["filename"], None),
    ]
    for values in forged:
        with pytest.raises(Forbidden) as caught:
            fs.verify(*values)
        assert caught.value.code == "invalid_signature", values
    other = FilesystemStore(fs.root, b"another-secret-of-enough-length", "https://x.example")
    with pytest.raises(Forbidden):
        other.verify(key, expires, q["sig"], q["filename"], q["type"])

    with pytest.raises(Forbidden) as expired:
        fs.verify(key, expires, q["sig"], q["filename"], q["type"], now=expires)
    assert (expired.value.code, expired.value.message) == ("link_expired", "link expired")


async def test_filesystem_paths_stay_under_the_root(fs: FilesystemStore, tmp_path: Path) -> None:
    await fs.put("inside/file.txt", b"in", "text/plain")
    assert fs.path_for("inside/file.txt") == fs.root / "inside" / "file.txt"
    assert fs.path_for("inside/file.txt").read_bytes() == b"in"
    for key in ("../outside.txt", "inside/../../outside.txt", "/etc/passwd"):
        with pytest.raises(ValidationFailed):
            fs.path_for(key)

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (fs.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Forbidden):
        fs.path_for("link/secret.txt")
    with pytest.raises(Forbidden):
        await fs.get("link/secret.txt")
    with pytest.raises(Forbidden):
        await fs.put("link/new.txt", b"escaped", "text/plain")
    with pytest.raises(Forbidden):
        await fs.delete("link/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]

    (fs.root / "alias").symlink_to(fs.root / "inside", target_is_directory=True)
    assert await fs.get("alias/file.txt") == b"in"


async def test_filesystem_writes_leave_no_temporary_files(
    fs: FilesystemStore, tmp_path: Path
) -> None:
    await fs.put("d/one", b"1", "text/plain")
    with pytest.raises(FileNotFoundError):
        await fs.put_file("d/two", tmp_path / "missing", "text/plain")
    await fs.put("d/one", b"11", "text/plain")
    assert sorted(p.name for p in (fs.root / "d").iterdir()) == ["one"]


async def test_filesystem_refuses_keys_that_collide_with_folders(fs: FilesystemStore) -> None:
    await fs.put("x/y", b"file", "text/plain")
    with pytest.raises(Conflict):
        await fs.put("x/y/z", b"under a file", "text/plain")
    await fs.put("p/q/r", b"deep", "text/plain")
    with pytest.raises(Conflict):
        await fs.put("p/q", b"over a folder", "text/plain")
    assert not await fs.exists("p/q")
    with pytest.raises(NotFound):
        await fs.get("p/q")
    await fs.delete("p/q")
    assert await fs.get("p/q/r") == b"deep"
    assert await fs.get("x/y") == b"file"


def test_filesystem_store_refuses_weak_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        FilesystemStore(tmp_path, b"short", "https://x.example")
    for base in ("ftp://x.example", "x.example", "https://x.example/?a=1"):
        with pytest.raises(ConfigError):
            FilesystemStore(tmp_path, SECRET, base)


# --- the S3 store ------------------------------------------------------------------------


def _raw_client(seaweed: SeaweedS3) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=seaweed.endpoint_url,
        region_name=seaweed.region,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
    )


async def test_s3_keeps_content_type_under_the_prefix(seaweed: SeaweedS3, tmp_path: Path) -> None:
    prefix = f"test-{uuid4().hex}"
    store = _s3_store(seaweed, prefix + "/")
    await store.ensure_bucket()
    source = tmp_path / "v.mp4"
    random_file(source, 9 * MiB)  # over the multipart threshold
    try:
        await store.put("r/report.pdf", b"%PDF-", "application/pdf")
        await store.put_file("v/video.mp4", source, "video/mp4")
    finally:
        await store.close()
    raw = _raw_client(seaweed)
    try:
        for key, content_type in (
            ("r/report.pdf", "application/pdf"),
            ("v/video.mp4", "video/mp4"),
        ):
            head = await asyncio.to_thread(raw.head_object, Bucket=BUCKET, Key=f"{prefix}/{key}")
            assert head["ContentType"] == content_type
        listed = await asyncio.to_thread(raw.list_objects_v2, Bucket=BUCKET, Prefix=prefix)
        assert sorted(o["Key"] for o in listed["Contents"]) == [
            f"{prefix}/r/report.pdf",
            f"{prefix}/v/video.mp4",
        ]
    finally:
        raw.close()


async def test_s3_unreachable_is_unavailable() -> None:
    (port,) = free_ports(1)
    store = S3Store(
        BUCKET,
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        access_key="k",
        secret_key="s",
    )
    try:
        with pytest.raises(Unavailable):
            await store.get("any")
        with pytest.raises(Unavailable):
            await store.put("any", b"", "text/plain")
    finally:
        await store.close()


def test_s3_urls() -> None:
    store = S3Store.from_url("s3://my-bucket/some/prefix/", region_name="us-east-1")
    assert (store.bucket, store.prefix) == ("my-bucket", "some/prefix/")
    assert S3Store.from_url("s3://my-bucket", region_name="us-east-1").prefix == ""
    for url in (
        "s3://",
        "s3:///prefix",
        "s3://b:9000/p",
        "s3://u@b/p",
        "s3://b/a/../c",
        "s3://b?x",
    ):
        with pytest.raises(ConfigError):
            S3Store.from_url(url)


# --- the factory and the keys ------------------------------------------------------------


def test_open_object_store_by_url(tmp_path: Path) -> None:
    def open_(url: str | None) -> ObjectStore:
        return open_object_store(
            url, data_dir=tmp_path, signing_secret=SECRET, public_base_url="http://localhost"
        )

    for url in (None, "", "file://"):
        store = open_(url)
        assert isinstance(store, FilesystemStore)
        assert store.root == (tmp_path / "objects").resolve()
    elsewhere = open_(f"file://{tmp_path / 'else where'}")
    assert isinstance(elsewhere, FilesystemStore)
    assert elsewhere.root == (tmp_path / "else where").resolve()
    s3 = open_("s3://bucket-name/pocdojo")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("bucket-name", "pocdojo/")
    for url in ("http://x", "file:relative", "file://host/abs", "s3://"):
        with pytest.raises(ConfigError):
            open_(url)


T1, T2 = UUID(int=1), UUID(int=2)
U, R = uuid4(), uuid4()


def test_key_helpers_follow_the_layout() -> None:
    assert report_key(T1, U, R, "pdf") == f"tenants/{T1}/users/{U}/reports/{R}.pdf"
    assert video_key(T1, U, 2024, R) == f"videos/{T1}/{U}/2024/{R}.mp4"
    assert thumbnail_key(T1, U, R) == f"videos/{T1}/{U}/thumbnails/{R}.jpg"
    assert recording_key(T1, R, "part-1.webm") == f"dojos/{T1}/{R}/recordings/part-1.webm"
    refused: list[Callable[[], str]] = [
        lambda: report_key(T1, U, R, "../pdf"),
        lambda: report_key(T1, U, R, ""),
        lambda: video_key(T1, U, 0, R),
        lambda: recording_key(T1, R, "../../other"),
        lambda: recording_key(T1, R, ".."),
        lambda: recording_key(T1, R, ""),
    ]
    for bad in refused:
        with pytest.raises(ValidationFailed):
            bad()


def test_keys_are_partitioned_by_tenant() -> None:
    def every_key(tenant: UUID) -> list[str]:
        return [
            report_key(tenant, U, R, "xlsx"),
            video_key(tenant, U, 2025, R),
            thumbnail_key(tenant, U, R),
            recording_key(tenant, R, "r.webm"),
        ]

    one, two = every_key(T1), every_key(T2)
    assert {tenant_of(k) for k in one} == {T1}
    assert {tenant_of(k) for k in two} == {T2}
    # Same user and object ids, different tenants: no key, and no folder, in common.
    for a, b in zip(one, two, strict=True):
        assert a.split("/")[:2] != b.split("/")[:2]
    assert tenant_of("static/css/app.css") is None
    assert tenant_of(f"tenants/{T1.hex}/x") is None
    assert tenant_of("tenants/not-a-uuid/x") is None


def test_content_disposition() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    assert content_disposition('Bericht "Q1" ü.pdf') == (
        'attachment; filename="Bericht _Q1_ _.pdf"; '
        "filename*=UTF-8''Bericht%20%22Q1%22%20%C3%BC.pdf"
    )
    assert content_disposition("日本.pdf").startswith('attachment; filename="__.pdf"; ')
    with pytest.raises(ValidationFailed):
        content_disposition("a\r\nSet-Cookie: x")
