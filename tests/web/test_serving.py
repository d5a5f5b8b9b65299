"""How pocdojo serves the browser app: the page, its headers, its assets, its size."""

from __future__ import annotations

import gzip
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from pocdojo.core.s3server import SeaweedS3
from pocdojo.web import pages

JS_BUDGET = 400 * 1024  # bytes of gzipped JavaScript on first load
# Static imports in esbuild's minified ES modules: `from"./x.js"` and `import"./x.js"`.
STATIC_IMPORT = re.compile(r"""(?:\bfrom|\bimport)\s*["'](\./[\w.-]+\.js)["']""")


async def test_the_page_is_served_on_every_client_route(client: TestClient[Any, Any]) -> None:
    for path in ("/", "/login", "/pocs", "/pocs/new", "/pocs/abc", "/pocs/abc/edit", "/dojos/x"):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-cache"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert '<script type="module" src="/assets/main-' in await resp.text()


async def test_the_policy_forbids_inline_code_and_foreign_hosts(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/")
    policy = dict(
        part.strip().split(" ", 1)
        for part in resp.headers["Content-Security-Policy"].split(";")
        if " " in part.strip()
    )
    host = f"{client.host}:{client.port}"
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == f"'self' ws://{host} wss://{host}"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in resp.headers["Content-Security-Policy"]


async def test_a_forged_host_header_adds_no_socket_source(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/", headers={"Host": "evil.example; script-src *"})
    assert "script-src *" not in resp.headers["Content-Security-Policy"]
    assert "connect-src 'self';" in resp.headers["Content-Security-Policy"]


async def test_assets_are_immutable_with_their_types(client: TestClient[Any, Any]) -> None:
    names = sorted(p.name for p in pages.ASSETS.iterdir())
    assert any(n.endswith(".js") for n in names)
    assert any(n.endswith(".css") for n in names)
    for name in names:
        resp = await client.get(f"/assets/{name}")
        assert resp.status == 200, name
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        expected = "text/javascript" if name.endswith(".js") else "text/css"
        assert resp.content_type == expected, name
        assert await resp.read() == (pages.ASSETS / name).read_bytes()


async def test_unknown_assets_are_not_found(client: TestClient[Any, Any]) -> None:
    for path in ("/assets/main-NOPE.js", "/assets/..%2Findex.html", "/assets/index.html"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get("/assets/")
    assert resp.status == 404


async def test_the_api_document_lists_no_page(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1/openapi.json")
    documented = (await resp.json())["paths"]
    assert not set(documented) & pages.PATHS
    app = client.app
    assert isinstance(app, web.Application)
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert served >= pages.PATHS


def first_load_scripts() -> list[str]:
    """The JavaScript files the page loads before any user action: the entry scripts named
    in index.html and everything they import statically (dynamic imports wait)."""
    html = (pages.STATIC / "index.html").read_text()
    queue = re.findall(r'<script[^>]* src="/assets/([\w.-]+\.js)"', html)
    seen: list[str] = []
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.append(name)
        queue += [m[2:] for m in STATIC_IMPORT.findall((pages.ASSETS / name).read_text())]
    return sorted(seen)


def test_first_load_javascript_fits_the_budget() -> None:
    scripts = first_load_scripts()
    assert any(name.startswith("main-") for name in scripts)
    size = sum(len(gzip.compress((pages.ASSETS / n).read_bytes(), 9)) for n in scripts)
    assert size < JS_BUDGET, f"{size} bytes gzipped in {scripts}"
    # The editor is split off: the room's chunk is not part of the first load.
    assert not any(name.startswith("room-") for name in scripts)


def test_the_sources_never_parse_html() -> None:
    """User-written text reaches the page as text: no source of the app writes markup."""
    sources = sorted((pages.STATIC.parents[2] / "web" / "src").rglob("*.js"))
    assert sources
    markup = re.compile(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b")
    found = [f"{p.name}: {m}" for p in sources for m in markup.findall(p.read_text())]
    assert found == []


async def test_with_s3_the_page_allows_media_and_images_from_its_links(
    make_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    seaweed_env: SeaweedS3,
) -> None:
    """Recordings and thumbnails play from S3's signed links: the policy names its origin
    for images and media, and for nothing else."""
    client = await make_client(object_store_url="s3://page-policy/pocdojo")
    resp = await client.get("/")
    policy = dict(
        part.strip().split(" ", 1)
        for part in resp.headers["Content-Security-Policy"].split(";")
        if " " in part.strip()
    )
    assert policy["media-src"] == f"'self' blob: {seaweed_env.endpoint_url}"
    assert policy["img-src"] == f"'self' blob: data: {seaweed_env.endpoint_url}"
    assert seaweed_env.endpoint_url not in policy["script-src"] + policy["connect-src"]
