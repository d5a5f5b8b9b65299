"""Background work repeated at an interval, stopped between runs rather than cancelled.

Cancelling a task in the middle of a database write can leave the connection waiting on
the server while the server waits on it; stopping here lets the current run finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class Periodic:
    """Runs ``work`` every ``interval`` seconds (at once again when it returns True)."""

    def __init__(
        self, name: str, interval: float, work: Callable[[], Awaitable[bool | None]]
    ) -> None:
        self.name = name
        self.interval = interval
        self._work = work
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Let the current run finish, then end the loop."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        busy = False
        while not self._stop.is_set():
            if not busy:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._stop.wait()
                if self._stop.is_set():
                    return
            try:
                busy = bool(await self._work())
            except Exception:  # keep going after a transient failure; it is logged
                log.exception("background work failed", work=self.name)
                busy = False
