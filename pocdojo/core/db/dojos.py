"""SQL for dojo sessions, participants, chat, and the collaborative document's storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class DojoSession:
    id: UUID
    tenant_id: UUID
    poc_id: UUID
    host_user_id: UUID
    title: str
    description: str | None
    language: str | None
    max_participants: int
    join_code: str
    status: str
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    recording_url: str | None
    created_at: datetime


@dataclass(frozen=True)
class Participant:
    user_id: UUID
    username: str
    full_name: str | None
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class ChatMessage:
    id: UUID
    user_id: UUID
    username: str
    text: str
    sent_at: datetime


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    taken_at: datetime
    reason: str
    code: str


@dataclass(frozen=True)
class StoredDoc:
    """A document as stored: its snapshot and the update log not yet folded into it.

    ``seqs`` numbers the logged ``updates`` (in the same order), so that compaction deletes
    exactly the rows it folded.
    """

    snapshot: bytes | None
    updates: list[bytes]
    seqs: list[int]


_COLUMNS = (
    "id, tenant_id, poc_id, host_user_id, title, description, language, max_participants, "
    "join_code, status, scheduled_at, started_at, ended_at, recording_url, created_at"
)


def _session(row: Any) -> DojoSession:
    return DojoSession(**{k: row[k] for k in DojoSession.__dataclass_fields__})


async def insert(conn: Any, **fields: Any) -> DojoSession:
    """Insert a session; ``fields`` are column names and values."""
    names = ", ".join(fields)
    params = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
    row = await conn.fetchrow(
        f"INSERT INTO dojo_sessions ({names}) VALUES ({params}) RETURNING {_COLUMNS}",
        *fields.values(),
    )
    return _session(row)


async def get(conn: Any, session_id: UUID, *, for_update: bool = False) -> DojoSession | None:
    """A session of the current tenant."""
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM dojo_sessions WHERE id = $1{lock}", session_id
    )
    return _session(row) if row else None


async def open_sessions(conn: Any, *, limit: int, offset: int) -> tuple[list[DojoSession], int]:
    """The tenant's scheduled and active sessions, soonest first."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}, count(*) OVER () AS total FROM dojo_sessions
            WHERE status <> 'ended'
            ORDER BY coalesce(started_at, scheduled_at, created_at), id
            LIMIT $1 OFFSET $2""",
        limit,
        offset,
    )
    total = (
        rows[0]["total"]
        if rows
        else await conn.fetchval("SELECT count(*) FROM dojo_sessions WHERE status <> 'ended'")
    )
    return [_session(r) for r in rows], total


async def set_status(conn: Any, session_id: UUID, status: str) -> DojoSession:
    """Move a session to ``active`` or ``ended``, stamping the time once."""
    stamp = "started_at" if status == "active" else "ended_at"
    row = await conn.fetchrow(
        f"""UPDATE dojo_sessions SET status = $2, {stamp} = coalesce({stamp}, now())
            WHERE id = $1 RETURNING {_COLUMNS}""",
        session_id,
        status,
    )
    return _session(row)


async def add_participant(
    conn: Any, *, session_id: UUID, tenant_id: UUID, user_id: UUID, role: str
) -> None:
    """Add a participant (no-op if already in)."""
    await conn.execute(
        """INSERT INTO dojo_participants (session_id, tenant_id, user_id, role)
           VALUES ($1, $2, $3, $4) ON CONFLICT (session_id, user_id) DO NOTHING""",
        session_id,
        tenant_id,
        user_id,
        role,
    )


async def participant_role(conn: Any, session_id: UUID, user_id: UUID) -> str | None:
    """The role of a user in a session, if they joined."""
    result: str | None = await conn.fetchval(
        "SELECT role FROM dojo_participants WHERE session_id = $1 AND user_id = $2",
        session_id,
        user_id,
    )
    return result


@dataclass(frozen=True)
class Admission:
    """What a socket needs to know to admit a user, read in one query."""

    status: str
    role: str | None
    username: str | None
    user_role: str | None
    user_active: bool
    login_live: bool  # the login session the token was issued under is open


async def admission(
    conn: Any, session_id: UUID, user_id: UUID, login_session_id: UUID
) -> Admission | None:
    """The session's status and the user's part in it (None: no such session)."""
    row = await conn.fetchrow(
        """SELECT s.status, p.role, u.username, u.role AS user_role,
                  coalesce(u.is_active, false) AS user_active,
                  EXISTS (SELECT 1 FROM auth_sessions a
                          WHERE a.id = $3 AND a.user_id = $2 AND a.revoked_at IS NULL
                            AND a.expires_at > now()) AS login_live
           FROM dojo_sessions s
           LEFT JOIN dojo_participants p ON p.session_id = s.id AND p.user_id = $2
           LEFT JOIN users u ON u.id = $2
           WHERE s.id = $1""",
        session_id,
        user_id,
        login_session_id,
    )
    return Admission(**dict(row)) if row else None


@dataclass(frozen=True)
class Randori:
    """A session's randori settings: the pilot rotates every ``period`` seconds from
    ``started_at`` through ``order``."""

    period: int
    started_at: datetime
    order: list[UUID]


async def randori(conn: Any, session_id: UUID) -> Randori | None:
    """The session's randori settings (None: off)."""
    row = await conn.fetchrow(
        """SELECT randori_period, randori_started_at, randori_order
           FROM dojo_sessions WHERE id = $1 AND randori_period IS NOT NULL""",
        session_id,
    )
    if row is None:
        return None
    return Randori(row["randori_period"], row["randori_started_at"], list(row["randori_order"]))


async def set_randori(conn: Any, session_id: UUID, period: int | None) -> Randori | None:
    """Turn randori on with ``period`` (rotating from now through the session's writers, in
    joining order), or off with None."""
    if period is None:
        await conn.execute(
            """UPDATE dojo_sessions SET randori_period = NULL, randori_started_at = NULL,
                      randori_order = NULL WHERE id = $1""",
            session_id,
        )
        return None
    await conn.execute(
        """UPDATE dojo_sessions SET randori_period = $2, randori_started_at = now(),
                  randori_order = ARRAY(
                      SELECT p.user_id FROM dojo_participants p JOIN users u ON u.id = p.user_id
                      WHERE p.session_id = $1 AND p.role <> 'observer' AND u.is_active
                        AND u.role <> 'viewer'
                      ORDER BY p.joined_at, p.user_id)
           WHERE id = $1""",
        session_id,
        period,
    )
    return await randori(conn, session_id)


async def participants(conn: Any, session_id: UUID) -> list[Participant]:
    """Everyone who joined, in joining order."""
    rows = await conn.fetch(
        """SELECT p.user_id, u.username, u.full_name, p.role, p.joined_at
           FROM dojo_participants p JOIN users u ON u.id = p.user_id
           WHERE p.session_id = $1 ORDER BY p.joined_at, u.username""",
        session_id,
    )
    return [Participant(**dict(r)) for r in rows]


async def count_participants(conn: Any, session_id: UUID) -> int:
    """How many have joined (observers included)."""
    result: int = await conn.fetchval(
        "SELECT count(*) FROM dojo_participants WHERE session_id = $1", session_id
    )
    return result


# --- chat ------------------------------------------------------------------------------------


async def add_chat(
    conn: Any, *, message_id: UUID, session_id: UUID, tenant_id: UUID, user_id: UUID, text: str
) -> datetime:
    """Store a chat message; returns its time."""
    sent_at: datetime = await conn.fetchval(
        """INSERT INTO dojo_chat (id, session_id, tenant_id, user_id, text)
           VALUES ($1, $2, $3, $4, $5) RETURNING sent_at""",
        message_id,
        session_id,
        tenant_id,
        user_id,
        text,
    )
    return sent_at


async def chat_page(
    conn: Any, session_id: UUID, *, before: datetime | None, limit: int
) -> list[ChatMessage]:
    """Up to ``limit`` messages older than ``before`` (or the newest), oldest first."""
    rows = await conn.fetch(
        """SELECT * FROM (
               SELECT c.id, c.user_id, u.username, c.text, c.sent_at
               FROM dojo_chat c JOIN users u ON u.id = c.user_id
               WHERE c.session_id = $1 AND ($2::timestamptz IS NULL OR c.sent_at < $2)
               ORDER BY c.sent_at DESC, c.id DESC LIMIT $3) newest
           ORDER BY sent_at, id""",
        session_id,
        before,
        limit,
    )
    return [ChatMessage(**dict(r)) for r in rows]


# --- the document ----------------------------------------------------------------------------


async def load_doc(conn: Any, session_id: UUID) -> StoredDoc:
    """The stored snapshot and every update still in the log.

    Every row left in the log is one no snapshot holds: compaction deletes exactly the rows it
    folds, in the transaction that stores the snapshot. Rows are numbered when inserted, not
    when committed, so a row may commit after a compaction that folded rows numbered higher;
    it stays in the log and is read here all the same.
    """
    # One statement, so one view of both tables: read apart, a compaction committing in
    # between would show the old snapshot without the rows it folded.
    rows = await conn.fetch(
        """SELECT NULL::bigint AS seq, state AS data FROM dojo_snapshots WHERE session_id = $1
           UNION ALL
           SELECT seq, data FROM dojo_updates WHERE session_id = $1
           ORDER BY seq NULLS FIRST""",
        session_id,
    )
    snapshot = rows[0]["data"] if rows and rows[0]["seq"] is None else None
    logged = rows[1:] if snapshot is not None else rows
    return StoredDoc(
        snapshot=snapshot,
        updates=[r["data"] for r in logged],
        seqs=[r["seq"] for r in logged],
    )


async def append_updates(
    conn: Any, session_id: UUID, tenant_id: UUID, updates: list[bytes]
) -> None:
    """Log accepted updates in order."""
    # One statement for the whole batch, rows numbered in arrival order.
    await conn.execute(
        """INSERT INTO dojo_updates (session_id, tenant_id, data)
           SELECT $1, $2, u.data FROM unnest($3::bytea[]) WITH ORDINALITY AS u (data, n)
           ORDER BY u.n""",
        session_id,
        tenant_id,
        updates,
    )


async def save_snapshot(
    conn: Any, session_id: UUID, tenant_id: UUID, state: bytes, folded: list[int]
) -> None:
    """Replace the snapshot with ``state`` and drop the logged updates it folds in (by seq).

    ``upto_seq`` keeps the highest folded seq, for operators; loading does not use it.
    """
    await conn.execute(
        """INSERT INTO dojo_snapshots (session_id, tenant_id, upto_seq, state)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (session_id) DO UPDATE
           SET upto_seq = greatest(dojo_snapshots.upto_seq, excluded.upto_seq),
               state = excluded.state, updated_at = now()""",
        session_id,
        tenant_id,
        max(folded, default=0),
        state,
    )
    if folded:
        await conn.execute(
            "DELETE FROM dojo_updates WHERE session_id = $1 AND seq = ANY($2::bigint[])",
            session_id,
            folded,
        )


async def add_history(conn: Any, session_id: UUID, tenant_id: UUID, code: str, reason: str) -> None:
    """Record the code as it stands."""
    await conn.execute(
        """INSERT INTO dojo_history (session_id, tenant_id, code, reason)
           VALUES ($1, $2, $3, $4)""",
        session_id,
        tenant_id,
        code,
        reason,
    )


async def last_history_code(conn: Any, session_id: UUID) -> str | None:
    """The code of the newest history entry."""
    result: str | None = await conn.fetchval(
        "SELECT code FROM dojo_history WHERE session_id = $1 ORDER BY taken_at DESC, id DESC "
        "LIMIT 1",
        session_id,
    )
    return result


async def history(conn: Any, session_id: UUID) -> list[HistoryEntry]:
    """Every history entry, oldest first."""
    rows = await conn.fetch(
        "SELECT id, taken_at, reason, code FROM dojo_history WHERE session_id = $1 "
        "ORDER BY taken_at, id",
        session_id,
    )
    return [HistoryEntry(**dict(r)) for r in rows]
