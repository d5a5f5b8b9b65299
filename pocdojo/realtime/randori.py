"""Randori: how coding dojos are run. One pilot types, the next in the order (the co-pilot)
guides, and the pair rotates every few minutes.

The rotation is a function of the clock and the session's settings (period, start, order,
stored in PostgreSQL), so every node holding the room computes the same pilot at the same
moment with no message per turn: a node only hears (through the room's stream) when the host
turns randori on, changes it or turns it off, and reads the settings again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pocdojo.core.db.dojos import Randori


@dataclass(frozen=True)
class Turn:
    """Who types now, who guides, and when the next turn starts (epoch seconds)."""

    number: int
    pilot: UUID
    copilot: UUID | None
    ends_at: float


@dataclass(frozen=True)
class Rotation:
    period: float
    started: float  # epoch seconds
    order: tuple[UUID, ...]

    @classmethod
    def of(cls, settings: Randori | None) -> Rotation | None:
        if settings is None or not settings.order:
            return None
        return cls(float(settings.period), settings.started_at.timestamp(), tuple(settings.order))

    def turn(self, now: float) -> Turn:
        number = max(0, math.floor((now - self.started) / self.period))
        size = len(self.order)
        return Turn(
            number=number,
            pilot=self.order[number % size],
            copilot=self.order[(number + 1) % size] if size > 1 else None,
            ends_at=self.started + (number + 1) * self.period,
        )

    def event(self, now: float) -> dict[str, Any]:
        """The ``randori`` event of the events socket, for the turn at ``now``."""
        turn = self.turn(now)
        return {
            "type": "randori",
            "active": True,
            "periodSeconds": self.period,
            "order": [str(u) for u in self.order],
            "turn": turn.number,
            "pilot": str(turn.pilot),
            "copilot": str(turn.copilot) if turn.copilot else None,
            "turnEndsAt": datetime.fromtimestamp(turn.ends_at, UTC).isoformat(),
        }


OFF: dict[str, Any] = {"type": "randori", "active": False}
