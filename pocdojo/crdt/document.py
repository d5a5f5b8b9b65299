"""Yjs documents of dojo sessions: building, merging, reading the code, and storing them.

A session's document has a ``Y.Text`` named ``code`` (seeded from the session's initial code)
and whatever else clients add. Stored form: one snapshot (the whole state up to an update
sequence number) plus the update log after it; ``compact`` folds the log into the snapshot.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import tenant_tx

CODE = "code"


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


def doc_from(snapshot: bytes | None, updates: list[bytes]) -> Doc[Any]:
    """A document holding a stored snapshot and the updates after it."""
    doc: Doc[Any] = Doc()
    doc.get(CODE, type=Text)
    if snapshot:
        doc.apply_update(snapshot)
    for update in updates:
        doc.apply_update(update)
    return doc


async def load(pool: Any, tenant_id: UUID, session_id: UUID) -> Doc[Any]:
    """The stored document of a session."""
    async with tenant_tx(pool, tenant_id) as conn:
        stored = await dojos_db.load_doc(conn, session_id)
    return doc_from(stored.snapshot, stored.updates)


async def append(pool: Any, tenant_id: UUID, session_id: UUID, updates: list[bytes]) -> None:
    """Log accepted updates."""
    async with tenant_tx(pool, tenant_id) as conn:
        await dojos_db.append_updates(conn, session_id, tenant_id, updates)


async def compact(pool: Any, tenant_id: UUID, session_id: UUID, live: Doc[Any] | None) -> int:
    """Fold the update log into the snapshot; returns how many updates were folded.

    The new snapshot is the union of the stored snapshot, the logged updates and (if given)
    a live in-memory document, so no update held by any of them is lost — whichever node
    compacts, and even if its copy lags behind the log.
    """
    async with tenant_tx(pool, tenant_id) as conn:
        # One compaction per session at a time, across nodes.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"dojo:{session_id}")
        stored = await dojos_db.load_doc(conn, session_id)
        if not stored.updates and live is None:
            return 0
        merged = doc_from(stored.snapshot, stored.updates)
        if live is not None:
            merged.apply_update(live.get_update())
        await dojos_db.save_snapshot(
            conn, session_id, tenant_id, merged.get_update(), stored.last_seq
        )
        return len(stored.updates)
