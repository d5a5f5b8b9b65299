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
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pycrdt import Decoder, Doc, Text, get_update, merge_updates

from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import tenant_tx
from pocdojo.crdt import wire

CODE = "code"
EMPTY_UPDATE = b"\x00\x00"


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
    """

    def __init__(self, doc: Doc[Any] | None = None) -> None:
        self.doc: Doc[Any] = doc if doc is not None else new_doc()
        self.held: bytes | None = None

    def apply(self, update: bytes) -> None:
        """Integrate an update; what it brings that waits for a dependency is held."""
        self.doc.apply_update(update)
        state = self.doc.get_state()
        rest = get_update(update, state)
        waiting = rest if rest != EMPTY_UPDATE and _waits(rest, state) else None
        if self.held is not None:
            # What was held may have been integrated along with this update.
            held = get_update(self.held, state)
            if _waits(held, state):
                waiting = held if waiting is None else merge_updates(held, waiting)
        self.held = waiting

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


def doc_from(snapshot: bytes | None, updates: list[bytes]) -> Document:
    """A document holding a stored snapshot and the updates logged after it."""
    document = Document(new_doc())
    if snapshot:
        document.apply(snapshot)
    for update in updates:
        document.apply(update)
    return document


async def load(pool: Any, tenant_id: UUID, session_id: UUID) -> Document:
    """The stored document of a session."""
    async with tenant_tx(pool, tenant_id) as conn:
        stored = await dojos_db.load_doc(conn, session_id)
    return doc_from(stored.snapshot, stored.updates)


async def append(pool: Any, tenant_id: UUID, session_id: UUID, updates: list[bytes]) -> None:
    """Log accepted updates."""
    async with tenant_tx(pool, tenant_id) as conn:
        await dojos_db.append_updates(conn, session_id, tenant_id, updates)


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
