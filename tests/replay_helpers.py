"""Timelines made in the tests: real Yjs updates, typed by authors each on their own document
(each a Yjs client of its own, as in a room), then stamped with a time and their author."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from pocdojo.crdt.document import EMPTY_UPDATE
from pocdojo.crdt.timeline import Step, Timeline


def _utf8_indexed() -> bool:
    doc: Doc[Any] = Doc()
    probe = doc.get("probe", type=Text)
    probe += "é"
    return len(probe) == 2


_UTF8 = _utf8_indexed()


def units(text: Text, chars: int) -> int:
    """The index pycrdt takes for the position ``chars`` characters into ``text``."""
    return len(str(text)[:chars].encode()) if _UTF8 else chars


class Script:
    """Edits by several authors on their own copies of one document, in order."""

    def __init__(self, base: bytes = EMPTY_UPDATE) -> None:
        """Start from ``base``, the document as it stood when the recording began."""
        self._docs: dict[UUID | None, tuple[Doc[Any], int]] = {}
        self.base = base
        self.updates: list[bytes] = [base]
        self.steps: list[Step] = []

    def _doc(self, author: UUID | None) -> Doc[Any]:
        doc, seen = self._docs.get(author) or (Doc(), 0)
        doc.get("code", type=Text)
        for update in self.updates[seen:]:  # the author's copy catches up first
            doc.apply_update(update)
        self._docs[author] = (doc, len(self.updates))
        return doc

    def edit(self, t: float, author: UUID | None, change: Callable[[Text], None]) -> None:
        """``author`` changes the code at ``t`` seconds."""
        doc = self._doc(author)
        made: list[bytes] = []
        subscription = doc.observe(lambda event: made.append(event.update))
        change(doc.get("code", type=Text))
        doc.unobserve(subscription)
        for update in made:
            self.updates.append(update)
            self.steps.append(Step(t, update, author))
        self._docs[author] = (doc, len(self.updates))

    def insert(self, t: float, author: UUID | None, at: int, value: str) -> None:
        """``author`` types ``value`` ``at`` characters into the code."""
        self.edit(t, author, lambda text: text.insert(units(text, at), value))

    def append(self, t: float, author: UUID | None, value: str) -> None:
        self.edit(t, author, lambda text: text.insert(units(text, len(str(text))), value))

    def delete(self, t: float, author: UUID | None, start: int, end: int) -> None:
        """``author`` deletes characters ``start`` to ``end`` (excluded)."""

        def cut(text: Text) -> None:
            del text[units(text, start) : units(text, end)]

        self.edit(t, author, cut)

    def timeline(self) -> Timeline:
        return Timeline(self.base, list(self.steps))
