"""Interfaces that outer packages implement and REST handlers call, so that ``rest`` does
not import ``realtime``."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID


class LiveRooms(Protocol):
    """What REST needs of the live dojo rooms, on whichever node they are."""

    async def end(self, session_id: UUID, tenant_id: UUID) -> None:
        """Close every socket of the session on every node and record the final code."""
        ...

    async def recording_changed(
        self, session_id: UUID, tenant_id: UUID, event: dict[str, Any]
    ) -> None:
        """The session's recording started or stopped (committed): send ``event`` to every
        socket of the session; on a stop, every node uploads the parts it recorded."""
        ...

    async def online(self, session_id: UUID) -> set[str]:
        """User ids (as strings) with an open socket to the session on any node."""
        ...

    async def access_changed(self, tenant_id: UUID, user_id: UUID) -> None:
        """The user's access changed (logout, deactivation, new role; committed): hold their
        open sockets, on every node, to what the database says now."""
        ...
