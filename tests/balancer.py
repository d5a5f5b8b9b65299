"""A TCP load balancer for tests: clients keep one address while the servers behind it die.

A stock y-websocket client reconnects to the same URL forever. Give each client a
``Balancer`` of its own: every new connection goes to a live backend (the client's preferred
one when it is up), and when a backend is marked down its connections are aborted at once, so
the client reconnects, through the same address, to another backend. Bytes are forwarded as
they come, and a side that ends cleanly is closed cleanly (after what was buffered for it is
written): only ``drop`` and a broken connection abort.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field


class Backends:
    """The backends (index → port) that are up, shared by any number of balancers."""

    def __init__(self) -> None:
        self.ports: dict[int, int] = {}
        self.balancers: list[Balancer] = []

    def up(self, index: int, port: int) -> None:
        self.ports[index] = port

    def down(self, index: int) -> None:
        """Route no new connection to ``index`` and abort every one it has."""
        self.ports.pop(index, None)
        for balancer in self.balancers:
            balancer.drop(index)

    def candidates(self, preferred: int) -> list[tuple[int, int]]:
        """Live backends to try, ``preferred`` first, then the others in index order after it."""
        if not self.ports:
            return []
        order = sorted(self.ports, key=lambda i: (i - preferred) % (max(self.ports) + 1))
        return [(i, self.ports[i]) for i in order]


@dataclass(eq=False)
class _Link:
    backend: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        self.client.transport.abort()
        self.upstream.transport.abort()

    def close(self) -> None:
        """Close both sides once what is buffered for them is written."""
        self.client.close()
        self.upstream.close()


class Balancer:
    """Listens on a loopback port of its own; forwards each connection to a live backend."""

    def __init__(self, backends: Backends, preferred: int) -> None:
        self.backends = backends
        self.preferred = preferred
        self.port = 0
        self.routed: Counter[int] = Counter()  # connections per backend, for reports
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        backends.balancers.append(self)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def current(self) -> list[int]:
        """The backends this balancer's open connections go to."""
        return sorted(link.backend for link in self._links)

    def drop(self, backend: int | None = None) -> None:
        """Abort the connections to ``backend`` (every connection if None)."""
        for link in list(self._links):
            if backend is None or link.backend == backend:
                link.abort()

    def rebalance(self) -> None:
        """Move connections back to the preferred backend, if it is up (abort the others)."""
        if self.preferred in self.backends.ports:
            for link in list(self._links):
                if link.backend != self.preferred:
                    link.abort()

    async def close(self) -> None:
        """Stop listening and abort every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if self in self.backends.balancers:
            self.backends.balancers.remove(self)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for backend, port in self.backends.candidates(self.preferred):
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue  # died before it was marked down: try the next one
            link = _Link(backend, writer, up_writer)
            self._links.add(link)
            self.routed[backend] += 1
            for src, dst in ((reader, up_writer), (up_reader, writer)):
                task = asyncio.create_task(self._pump(link, src, dst))
                link.pumps.append(task)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        writer.transport.abort()  # nothing is up: the client retries later
        writer.close()

    async def _pump(
        self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            link.abort()  # a broken side breaks the whole connection
        else:
            # A clean end: pass it on once what was read is written, then let the other
            # direction finish by itself.
            with contextlib.suppress(ConnectionError, OSError):
                if dst.can_write_eof():
                    dst.write_eof()
                else:
                    dst.close()
        finally:
            if all(task.done() or task is asyncio.current_task() for task in link.pumps):
                link.close()
                self._links.discard(link)
