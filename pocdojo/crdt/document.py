"""Yjs documents of dojo sessions: building, merging, reading the code, and storing them.

A session's document has a ``Y.Text`` named ``code`` (seeded from the session's initial code)
and whatever else clients add. Stored form: one snapshot plus the update log not yet folded
into it; ``compact`` folds the log into the snapshot.

An update can arrive before one it depends on (a node died before storing the dependency,
or it is still on its way). Yjs keeps such an update aside and integrates it when the
dependency arrives, and ``Y.encodeStateAsUpdate`` still carries it, so whoever syncs from that
document gets it too. pycrdt keeps it aside as well but leaves it out of ``get_update``;
``Document`` puts it back, so that nothing a document was given is dropped by a sync answer, a
compaction or a snapshot.

Shared types nested in one another are bounded per document (``MAX_TYPES``): see
``Document.admit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pycrdt import Decoder, Doc, Text, get_update, merge_updates

from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.crdt import wire

CODE = "code"
EMPTY_UPDATE = b"\x00\x00"
# Shared types (maps, arrays, texts, XML nodes within the root ones) a document may gain.
MAX_TYPES = 1024
# Past this many, a stored document is not served (``load(serve=True)``): stored before the
# cap, or by several nodes admitting types at once (each within ``MAX_TYPES``).
MAX_STORED_TYPES = 8 * MAX_TYPES


class TooManyTypes(ValueError):
    """An update would take the document past ``MAX_TYPES`` shared types."""


class UnsafeDocument(Exception):
    """A stored document holds more shared types than can be served safely."""


def new_doc(initial_code: str = "") -> Doc[Any]:
    """A document whose ``code`` text holds ``initial_code``."""
    doc: Doc[Any] = Doc()
    text = doc.get(CODE, type=Text)
    if initial_code:
        text += initial_code
    return doc


def code_of(doc: Doc[Any]) -> str:
    """The document's code."""
    return str(doc.get(CODE, type=Text))


def _waits(rest: bytes, state: bytes) -> bool:
    """Whether ``rest`` (an update less what a document holds) holds anything the document
    could not integrate: items (any left are past its state) or deletions of unknown items."""
    decoder = Decoder(rest)
    if decoder.read_var_uint():  # items
        return True
    ranges = decoder.read_var_uint()
    if not ranges:
        return False
    known = wire.state_vector(state)
    for _ in range(ranges):
        client = decoder.read_var_uint()
        for _ in range(decoder.read_var_uint()):
            clock, length = decoder.read_var_uint(), decoder.read_var_uint()
            if clock + length > known.get(client, 0):
                return True
    return False


class Document:
    """A pycrdt document that, like Yjs, keeps and passes on what it cannot integrate yet.

    Attributes:
        doc: the pycrdt document.
        held: one update merging every part of what was applied that waits for a dependency
            (None when nothing waits).
        types: how many items holding a shared type it holds (held ones included, and deleted
            ones until it is next loaded), once counted (``count_types``; None before).
    """

    def __init__(self, doc: Doc[Any] | None = None) -> None:
        self.doc: Doc[Any] = doc if doc is not None else new_doc()
        self.held: bytes | None = None
        self.types: int | None = None
        self._held_types: set[tuple[int, int]] = set()

    def count_types(self) -> int:
        """Count the types the document holds, and from now on those each update brings.

        Only a document that is served counts them: reading the whole state costs about
        0.3 s a MiB of a much-edited text, spent once when a room is loaded rather than at
        every compaction.
        """
        if self.types is None:
            self._held_types = _types(self.held) if self.held is not None else set()
            self.types = len(_types(self.encode()))
        return self.types

    def admit(self, update: bytes) -> None:
        """Refuse an update that would take the document past ``MAX_TYPES`` shared types.

        Types nest in one another by reference (an item's parent is another type's item), so
        a document can nest them as deep as it holds them, across any number of updates, and
        pycrdt deletes a type, and renders one to JSON, by recursion: some 50,000 levels
        (700 KB of update) overflow an 8 MiB native stack and kill the process, far fewer
        on a smaller stack. Capping the types a document holds bounds that depth whatever
        the updates' order, with no need to know which type each item lives in (an item
        written after its left neighbour names no parent), and costs a set of ids. A code
        editor's document is one text (``code``) and perhaps a few maps: a y-codemirror
        client makes no types at all, so 1,024 leaves room for any few maps and arrays a
        client adds, and keeps the depth some 50 times below the crash.

        Raises:
            TooManyTypes: the update would take the document past the cap; it is not applied.
        """
        types = self.count_types()
        new = self._new_types(update)
        if new and types + len(new) > MAX_TYPES:
            raise TooManyTypes(
                f"the document would hold over {MAX_TYPES} shared types ({types} now)"
            )

    def _new_types(self, update: bytes) -> set[tuple[int, int]]:
        """The ids of the type items ``update`` brings that the document lacks (not counted)."""
        ids = _types(update)
        if not ids:
            return set()
        state = wire.state_vector(self.doc.get_state())
        return {(c, clock) for c, clock in ids if clock >= state.get(c, 0)} - self._held_types

    def apply(self, update: bytes) -> None:
        """Integrate an update; what it brings that waits for a dependency is held."""
        new = self._new_types(update) if self.types is not None else set()
        self.doc.apply_update(update)
        if self.types is not None:
            self.types += len(new)
        state = self.doc.get_state()
        rest = get_update(update, state)
        waiting = rest if rest != EMPTY_UPDATE and _waits(rest, state) else None
        if self.held is not None:
            # What was held may have been integrated along with this update.
            held = get_update(self.held, state)
            if _waits(held, state):
                waiting = held if waiting is None else merge_updates(held, waiting)
        self.held = waiting
        if self.types is not None:
            # Held type items are counted once: integrated later, or sent again, they add none.
            self._held_types = (self._held_types | new) & _types(waiting) if waiting else set()

    def waits(self, update: bytes) -> bool:
        """Whether all of ``update`` that adds anything is held: it waits for a dependency
        and brought nothing the document integrated (so nothing can depend on it yet)."""
        state = self.doc.get_state()
        rest = get_update(update, state)
        if rest == EMPTY_UPDATE or not _waits(rest, state):
            return False
        known = wire.state_vector(state)
        return all(start >= known.get(c, 0) for c, start in wire.struct_starts(update).items())

    def encode(self, state: bytes | None = None) -> bytes:
        """The document as an update (what ``state`` lacks, if given), held parts included:
        as Yjs's ``encodeStateAsUpdate``."""
        update = self.doc.get_update(state) if state is not None else self.doc.get_update()
        if self.held is None:
            return update
        return merge_updates(update, self.held)

    def code(self) -> str:
        return code_of(self.doc)


def _types(update: bytes) -> set[tuple[int, int]]:
    """The ids of the items of ``update`` that hold a shared type."""
    try:
        return set(wire.check_update(update))
    except wire.Malformed:  # stored before the strict reader existed: not counted
        return set()


def doc_from(snapshot: bytes | None, updates: list[bytes]) -> Document:
    """A document holding a stored snapshot and the updates logged after it."""
    document = Document(new_doc())
    if snapshot:
        document.apply(snapshot)
    for update in updates:
        document.apply(update)
    return document


async def load(pool: Any, tenant_id: UUID, session_id: UUID, *, serve: bool = False) -> Document:
    """The stored document of a session.

    Raises:
        UnsafeDocument: ``serve`` (it is to be edited) and it holds more shared types than
            ``MAX_STORED_TYPES``: deleting one of them could overflow the stack.
    """
    async with tenant_tx(pool, tenant_id) as conn:
        stored = await dojos_db.load_doc(conn, session_id)
    document = doc_from(stored.snapshot, stored.updates)
    if serve and document.count_types() > MAX_STORED_TYPES:
        raise UnsafeDocument(f"the stored document holds {document.types} shared types")
    return document


async def append(
    pool: Any,
    tenant_id: UUID,
    session_id: UUID,
    updates: list[bytes],
    timeline: Sequence[tuple[UUID, float, bytes, bool, UUID | None]] = (),
) -> None:
    """Log accepted updates, and add to recordings' code timelines (rows as
    ``recordings_db.add_timeline`` takes them) in the same transaction."""
    async with tenant_tx(pool, tenant_id) as conn:
        if updates:
            await dojos_db.append_updates(conn, session_id, tenant_id, updates)
        if timeline:
            await recordings_db.add_timeline(conn, tenant_id, timeline)


async def compact(pool: Any, tenant_id: UUID, session_id: UUID, live: Document | None) -> int:
    """Fold the update log into the snapshot; returns how many updates were folded.

    The new snapshot is the union of the stored snapshot, the logged updates and (if given)
    a live in-memory document, held parts included, so no update held by any of them is lost,
    whichever node compacts. Exactly the rows read are deleted: a row another node commits
    meanwhile stays in the log.
    """
    async with tenant_tx(pool, tenant_id) as conn:
        # One compaction per session at a time, across nodes.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"dojo:{session_id}")
        stored = await dojos_db.load_doc(conn, session_id)
        if not stored.updates and live is None:
            return 0
        merged = doc_from(stored.snapshot, stored.updates)
        if live is not None:
            merged.apply(live.encode())
        await dojos_db.save_snapshot(conn, session_id, tenant_id, merged.encode(), stored.seqs)
        return len(stored.updates)
