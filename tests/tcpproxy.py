"""A TCP proxy a test can cut and restore, to take a server's Redis or PostgreSQL away for a
while, or to move clients from one node to another as a load balancer would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to an upstream; ``cut()`` drops every connection and refuses
    new ones until ``restore()``.

    The upstream is a TCP address, or a Unix socket (``CuttableProxy.unix``: the embedded
    PostgreSQL listens on one only). Setting ``upstream`` sends new connections elsewhere;
    those already open stay where they are.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.upstream_unix: str | None = None
        self.port = 0
        self._server: asyncio.Server | None = None
        self._closed: list[asyncio.Server] = []
        self._links: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    @classmethod
    def unix(cls, path: str) -> CuttableProxy:
        """A proxy to the Unix socket at ``path``."""
        proxy = cls("", 0)
        proxy.upstream_unix = path
        return proxy

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        """Refuse new connections; those open go on."""
        if self._server is not None:
            self._server.close()
            self._closed.append(self._server)
            self._server = None

    async def cut(self) -> None:
        self.stop_accepting()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()
        # Once its connections are gone (Python 3.12 waits for them too).
        for server in self._closed:
            await server.wait_closed()
        self._closed.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()
        for task in list(self._pumps):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.upstream_unix is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self.upstream_unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        task = asyncio.create_task(self._link(reader, writer, up_reader, up_writer))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    async def _link(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Both directions of one connection, then close both ends (each has seen EOF)."""
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                end.close()
                self._links.discard(end)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        """Forward ``src`` to ``dst`` as TCP would: an EOF becomes a half-close (FIN), a reset
        a reset. A closed connection is not torn down at once: a peer whose last data was
        still unread (a WebSocket close frame behind a typing client's updates) would lose it.
        """
        forwarding = True
        try:
            while data := await src.read(65536):
                if not forwarding:
                    continue  # the other side is gone: read to the end, forward nothing
                try:
                    dst.write(data)
                    await dst.drain()
                except (ConnectionError, OSError):
                    forwarding = False
            if forwarding and dst.can_write_eof() and not dst.is_closing():
                dst.write_eof()
        except (ConnectionError, OSError):
            dst.transport.abort()


@contextlib.asynccontextmanager
async def redis_through_proxy(redis_url: str) -> AsyncIterator[tuple[CuttableProxy, str]]:
    """A started proxy in front of the Redis at ``redis_url``, and the URL to reach it by."""
    parts = urlsplit(redis_url)
    assert parts.hostname is not None
    assert parts.port is not None
    proxy = CuttableProxy(parts.hostname, parts.port)
    await proxy.start()
    try:
        yield proxy, f"redis://127.0.0.1:{proxy.port}/0"
    finally:
        await proxy.close()
