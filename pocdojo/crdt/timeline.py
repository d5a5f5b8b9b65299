"""A recording's code timeline: the document as it stood when the recording began, then every
update accepted while it ran, each at its server time (seconds from the recording's start) and
with its author when known. The code at any second is the base plus the steps up to it.

Stored rows (``dojo_timeline``) are of two kinds: ``state`` rows, a node's whole document when
it learnt that the recording began or when it loaded the room during the recording, and
``update`` rows, each update written to the log while the recording ran. ``from_rows`` folds
them into a base and steps: the earliest state rows make the base (nobody could edit before
any node held the room), a later node's state row is a step (anything in it that is new came
from that node's copy).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text, merge_updates

from pocdojo.core.db import recordings as recordings_db
from pocdojo.crdt import wire
from pocdojo.crdt.document import CODE, EMPTY_UPDATE

# Updates by the same author within this many seconds are one step in the player's timeline.
STEP_SECONDS = 0.1


@dataclass(frozen=True)
class Row:
    """A stored timeline row: ``at`` seconds from the start, ``state`` or an update."""

    at: float
    data: bytes
    state: bool
    author: UUID | None


@dataclass(frozen=True)
class Step:
    """Updates accepted at ``t`` seconds (merged), by ``author`` if known."""

    t: float
    update: bytes
    author: UUID | None


@dataclass(frozen=True)
class Timeline:
    base: bytes
    steps: list[Step]

    def authors(self) -> list[UUID]:
        """Every known author, in order of their first step."""
        seen: dict[UUID, None] = {}
        for step in self.steps:
            if step.author is not None:
                seen.setdefault(step.author)
        return list(seen)


def from_rows(rows: Sequence[Row]) -> Timeline:
    """Fold stored rows (in any order) into a base and time-ordered steps.

    Authors left unknown (an update stored by another node than the one that accepted it)
    are found from the Yjs clients whose edits it carries, where another row tells whose
    those clients are.
    """
    ordered = sorted(rows, key=lambda r: r.at)
    states = [r for r in ordered if r.state]
    first = states[0].at if states else 0.0
    base_parts = [r.data for r in states if r.at <= first]
    owners: dict[int, UUID] = {}
    for row in ordered:
        if row.author is not None and not row.state:
            for client in _clients(row.data):
                owners.setdefault(client, row.author)
    steps: list[Step] = []
    for row in ordered:
        if row.state and row.at <= first:
            continue
        author = row.author if not row.state else None
        if author is None and not row.state:
            found = {owners.get(c) for c in _clients(row.data)} - {None}
            author = found.pop() if len(found) == 1 else None
        steps.append(Step(max(row.at, 0.0), row.data, author))
    base = merge_updates(*base_parts) if base_parts else EMPTY_UPDATE
    return Timeline(base, steps)


async def load(conn: Any, recording: recordings_db.Recording) -> Timeline:
    """The recording's code timeline as stored."""
    return from_rows([Row(*row) for row in await recordings_db.timeline_rows(conn, recording)])


def _clients(update: bytes) -> Iterable[int]:
    try:
        return wire.struct_starts(update).keys()
    except ValueError:
        return ()


def coalesced(timeline: Timeline) -> Timeline:
    """The timeline in fewer steps, for a player: each run of one author's updates within
    ``STEP_SECONDS`` is one step, at the time of its last update (so no update shows before
    its time, and none more than ``STEP_SECONDS`` late)."""
    return Timeline(timeline.base, _coalesce(timeline.steps))


def _coalesce(steps: list[Step]) -> list[Step]:
    out: list[Step] = []
    run: list[Step] = []

    def close() -> None:
        if run:
            data = run[0].update if len(run) == 1 else merge_updates(*(s.update for s in run))
            out.append(Step(run[-1].t, data, run[0].author))
            run.clear()

    for step in steps:
        if run and (step.author != run[0].author or step.t - run[0].t >= STEP_SECONDS):
            close()
        run.append(step)
    close()
    return out


def doc_at(timeline: Timeline, t: float) -> Doc[Any]:
    """The document as it stood ``t`` seconds into the recording."""
    doc: Doc[Any] = Doc()
    doc.get(CODE, type=Text)
    doc.apply_update(timeline.base)
    for step in timeline.steps:
        if step.t > t:
            break
        doc.apply_update(step.update)
    return doc


def code_at(timeline: Timeline, t: float) -> str:
    """The code as it stood ``t`` seconds into the recording."""
    return str(doc_at(timeline, t).get(CODE, type=Text))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
