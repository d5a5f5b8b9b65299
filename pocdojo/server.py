"""Serving the application: aiohttp's runner, with connections that answer in the API's error
shape even what aiohttp refuses before the application sees it.

aiohttp's HTTP parser refuses some requests before any middleware runs: a request line or a
header over 8190 bytes, bytes a URL may not hold, a malformed request line. Its per-connection
``RequestHandler.handle_error`` then answers 400 in plain text and logs the parser's exception
with a traceback, once per such request. aiohttp has no setting for either (aio-libs/aiohttp
#3287, open since 2018), so ``ConnectionHandler`` overrides that public method, and two small
subclasses make a runner use it. Those lean on aiohttp internals, the least of them available:

- ``_Server.__call__`` (the protocol factory) builds a ``ConnectionHandler`` exactly as
  ``web.Server.__call__`` builds aiohttp's own, from ``Server._loop`` and ``Server._kwargs``;
- ``AppRunner._make_server``, the hook each aiohttp runner implements, builds that server from
  the one aiohttp made for the application.

Every test client serves through ``AppRunner`` (tests/conftest.py), and the parser tests in
tests/rest/test_pipeline.py fail if an aiohttp upgrade moves any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from pocdojo.core import appkeys
from pocdojo.core.middleware import error_response

log = structlog.get_logger("pocdojo.http")


class ConnectionHandler(web.RequestHandler):
    """aiohttp's handler of one connection, answering its own refusals in the error shape."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a request aiohttp could not hand to the application, logging one line.

        aiohttp calls this for what its parser refuses (400) and for an exception that
        escapes the middleware (500: the middleware catches everything, so only a bug).

        Raises:
            ConnectionError: Part of another answer was sent already (as aiohttp does).
        """
        request_id = uuid.uuid4().hex
        if status >= 500:
            log.error("request failed outside the middleware", request_id=request_id, exc_info=exc)
            code, text = "internal_error", "an internal error occurred"
        else:
            # The parser's refusal is the client's doing: an access line, not a traceback.
            code, text = "bad_request", _refusal(exc, message)
            log.info(
                "request",
                route="unparsed",
                status=status,
                error=text,
                remote=request.remote,
                request_id=request_id,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already started; the error cannot be sent")
        response = error_response(status, code, text, headers={"X-Request-ID": request_id})
        response.force_close()
        return response


def _refusal(exc: BaseException | None, message: str | None) -> str:
    """One line saying what the parser refused, without echoing the request back."""
    if isinstance(exc, LineTooLong):
        return f"the request line or a header is longer than {exc.args[1]} bytes"
    # The parser's message starts with the reason ("Invalid char in url query:"), then
    # quotes the request with a caret under the fault.
    lines = (message or "").strip().splitlines()
    reason = lines[0].strip().rstrip(":")[:150] if lines else ""
    return f"the request could not be parsed: {reason}" if reason else "the request is malformed"


class _Server(web.Server):
    """aiohttp's low-level server, handling each connection with a ``ConnectionHandler``."""

    def __call__(self) -> web.RequestHandler:
        # web.Server.__call__ with another class: aiohttp takes no parameter for it.
        return ConnectionHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer aiohttp's own refusals in the error shape."""

    async def _make_server(self) -> web.Server:
        built = await super()._make_server()  # starts the application
        return _Server(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **built._kwargs,
        )


def run(app: web.Application, *, host: str, port: int) -> None:
    """Serve ``app`` on ``host``:``port`` until SIGINT or SIGTERM, then stop gracefully.

    What ``web.run_app`` does, through ``AppRunner`` (``run_app`` always uses aiohttp's).
    """
    asyncio.run(_serve(app, host, port))


async def _serve(app: web.Application, host: str, port: int) -> None:
    """Serve until a signal, then drain (see ``drain``)."""
    settings = app[appkeys.settings_key]
    signals: asyncio.Queue[int] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, signals.put_nowait, signum)
    # As run_app was called: no aiohttp access log (the middleware writes one line per
    # request), and run_app's keep-alive of 75 s rather than the handler's default hour.
    # In-flight requests get half the drain's time; the rest is for storing rooms and jobs.
    runner = AppRunner(
        app, access_log=None, keepalive_timeout=75.0, shutdown_timeout=settings.drain_timeout / 2
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        received = await signals.get()
        log.info("draining", signal=signal.Signals(received).name, delay=settings.drain_delay)
        app[appkeys.draining_key].set()
        if settings.drain_delay:
            # Still serving, but /readyz answers 503 and new sockets are refused, so a
            # balancer's health checks take the node out. A second signal cuts it short.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signals.get(), settings.drain_delay)
    finally:
        await drain(runner, settings.drain_timeout)


async def drain(runner: web.AppRunner, within: float) -> None:
    """Stop within ``within`` seconds: stop listening; store every room and close its
    sockets with 1001 (clients reconnect to another node); let in-flight requests and jobs
    finish; store and unload the rooms again; close the engines. What is not done by then is
    left: every update it held is in other nodes' streams and in its clients."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(runner.cleanup(), within)
    except TimeoutError:
        log.error("draining took too long: stopping anyway", within=within)
    else:
        log.info("drained", seconds=round(time.monotonic() - started, 3))
