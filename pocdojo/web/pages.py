"""Serving the browser app: its page on every client-side route, its hashed assets forever.

The page is sent with ``no-cache`` (it names the current assets) and a Content-Security-Policy
that allows scripts and styles from this origin only, and sockets to this host. Assets carry a
content hash in their names, so they may be cached for a year.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from pocdojo.core import appkeys

STATIC = Path(__file__).parent / "static"
ASSETS = STATIC / "assets"

# The app's client-side routes (web/src/router.js): each answers with the page.
PAGES = (
    "/",
    "/login",
    "/signup",
    "/pocs",
    "/pocs/new",
    "/pocs/{pocId}",
    "/pocs/{pocId}/edit",
    "/favorites",
    "/reports",
    "/dojos",
    "/dojos/{sessionId}",
    "/dojos/{sessionId}/recordings",
    "/dojos/{sessionId}/recordings/{recordingId}",
)
ASSET_PATH = "/assets/{name}"
PATHS = frozenset((*PAGES, ASSET_PATH))

_ASSET_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)+$")
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}
log = structlog.get_logger(__name__)
IMMUTABLE = "public, max-age=31536000, immutable"
page_key = web.AppKey("web_page", bytes)


def content_security_policy(host: str, store_origin: str = "") -> str:
    """The page's policy: nothing inline, everything from this origin, sockets to this host,
    and images and media (thumbnails, recordings) from the object store's links too.

    Args:
        host: the ``Host`` the page was asked for (so ``ws:``/``wss:`` go to the same place).
        store_origin: where the object store's signed links point, when not here (S3).
    """
    sockets = f"ws://{host} wss://{host}" if _HOST.match(host) else ""
    store = f" {store_origin}" if _ORIGIN.match(store_origin) else ""
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' blob: data:{store}; media-src 'self' blob:{store}; font-src 'self'; "
        f"connect-src 'self' {sockets}".rstrip()
        + "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    )


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
# The object store's origin, found on the first page served (the store opens at startup).
_store_origin_key = web.AppKey("web_store_origin", dict)


async def store_origin(app: web.Application) -> str:
    """The origin of the object store's signed links ("" for links to this server)."""
    found: dict[str, str] = app[_store_origin_key]
    if "origin" not in found:
        store = app.get(appkeys.object_store_key)
        try:  # signing is local (no request to the store)
            url = "" if store is None else await store.download_url("probe", expires_in=60)
        except Exception:  # the page goes out without it; found on a later page
            log.warning("the object store's origin is unknown", exc_info=True)
            return ""
        parts = urlsplit(url)
        found["origin"] = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    return found["origin"]


_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


async def _page(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[page_key],
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": content_security_policy(
                request.host, await store_origin(request.app)
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )


async def _asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = ASSETS / name
    kind = _TYPES.get(path.suffix)
    if not _ASSET_NAME.match(name) or kind is None or not path.is_file():
        raise web.HTTPNotFound(reason="no such asset")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": kind
            if kind.startswith(("image/", "font/"))
            else f"{kind}; charset=utf-8",
            "Cache-Control": IMMUTABLE,
            "X-Content-Type-Options": "nosniff",
        },
    )


def install(app: web.Application) -> None:
    """Add the page and asset routes to ``app``; they stay out of the REST OpenAPI document.

    Args:
        app: the application; the page is read once, here.
    """
    app[page_key] = (STATIC / "index.html").read_bytes()
    app[_store_origin_key] = {}
    for path in PAGES:
        app.router.add_get(path, _page)
    app.router.add_get(ASSET_PATH, _asset)
