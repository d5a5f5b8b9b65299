"""Who wrote each character of a recording's code: the timeline's steps applied in order to
a document whose text is observed, with a list of authors kept beside its characters.

Each change of the text comes as a delta (retain, insert, delete) counted in the text's own
units; an insert takes its step's author, a delete drops the authors of what it removed, and
characters of the base, or of steps whose author is unknown, have none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from pocdojo.crdt.document import CODE
from pocdojo.crdt.timeline import Timeline

# What an embedded object (not text) in the code shows as.
OBJECT = "\ufffc"


@dataclass(frozen=True)
class Authored:
    """The code after a step, with the author of each character.

    Attributes:
        t: Seconds from the recording's start.
        code: The whole code.
        authors: One entry per character of ``code``: who inserted it, None when unknown.
        edited: The character index where the step's last change was made (after the text
            it inserted, or where it deleted).
    """

    t: float
    code: str
    authors: tuple[UUID | None, ...]
    edited: int


@functools.cache
def _width() -> Callable[[str], int]:
    """How many of pycrdt's text units one character takes (its indexes are UTF-8 bytes in
    some versions, code points or UTF-16 units in others): measured once, not assumed."""
    doc: Doc[Any] = Doc()
    probe = doc.get("probe", type=Text)
    probe += "é😀"
    units = len(probe)
    if units == len("é😀".encode()):
        return lambda char: len(char.encode())
    if units == len("é😀".encode("utf-16-le")) // 2:
        return lambda char: 2 if ord(char) > 0xFFFF else 1
    return lambda char: 1


class _Tracker:
    """The text's characters and their authors, kept in step with its deltas."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.authors: list[UUID | None] = []
        self.author: UUID | None = None
        self.edited = 0
        self.changed = False
        self._width = _width()

    def _advance(self, index: int, units: int) -> int:
        """The character index ``units`` text units after ``index``."""
        while units > 0 and index < len(self.chars):
            units -= self._width(self.chars[index])
            index += 1
        return index

    def on_change(self, event: Any) -> None:
        """Follow a ``TextEvent``'s delta (typed Any: pycrdt declares its fields as slots)."""
        index = 0
        for op in event.delta:
            if "retain" in op:
                index = self._advance(index, int(op["retain"]))
            elif "insert" in op:
                value = op["insert"]
                chars = list(value) if isinstance(value, str) else [OBJECT]
                self.chars[index:index] = chars
                self.authors[index:index] = [self.author] * len(chars)
                index += len(chars)
            elif "delete" in op:
                end = self._advance(index, int(op["delete"]))
                del self.chars[index:end]
                del self.authors[index:end]
        self.edited = index
        self.changed = True

    def snapshot(self, t: float) -> Authored:
        self.changed = False
        return Authored(t, "".join(self.chars), tuple(self.authors), self.edited)


def authored(timeline: Timeline) -> Iterator[Authored]:
    """The code at the start (``t`` 0), then after each step that changed it, in order.

    Args:
        timeline: A recording's base and steps.

    Yields:
        The code and its authors; a step that left the code as it was yields nothing.
    """
    doc: Doc[Any] = Doc()
    text = doc.get(CODE, type=Text)
    tracker = _Tracker()
    subscription = text.observe(tracker.on_change)
    try:
        doc.apply_update(timeline.base)
        yield tracker.snapshot(0.0)
        for step in timeline.steps:
            tracker.author = step.author
            doc.apply_update(step.update)
            if tracker.changed:
                yield tracker.snapshot(step.t)
    finally:
        text.unobserve(subscription)
