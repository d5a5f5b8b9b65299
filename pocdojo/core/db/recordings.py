"""SQL for the recordings of a dojo session's voice and their per-participant parts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from pocdojo.core.errors import Conflict


@dataclass(frozen=True)
class Recording:
    id: UUID
    tenant_id: UUID
    session_id: UUID
    started_by: UUID
    started_at: datetime
    stopped_at: datetime | None
    status: str
    participants: list[UUID]
    ogg_key: str | None
    m4a_key: str | None
    duration: float | None
    error: str | None


@dataclass(frozen=True)
class Part:
    """One participant's audio; ``start_offset`` and ``bytes`` are None until uploaded."""

    user_id: UUID
    start_offset: float | None
    object_key: str
    bytes: int | None


_COLUMNS = (
    "id, tenant_id, session_id, started_by, started_at, stopped_at, status, participants, "
    "ogg_key, m4a_key, duration, error"
)


def _recording(row: Any) -> Recording:
    fields = dict(row)
    fields["participants"] = list(fields["participants"])
    return Recording(**fields)


async def start(conn: Any, session_id: UUID, tenant_id: UUID, user_id: UUID) -> Recording | None:
    """Start a recording of the session; None if one is already running."""
    try:
        async with conn.transaction():  # a savepoint: the caller's transaction survives
            row = await conn.fetchrow(
                f"""INSERT INTO dojo_recordings (id, tenant_id, session_id, started_by)
                    VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}""",
                uuid.uuid4(),
                tenant_id,
                session_id,
                user_id,
            )
    except asyncpg.UniqueViolationError:
        return None
    return _recording(row)


async def stop(conn: Any, session_id: UUID) -> Recording | None:
    """Stop the session's running recording (it goes on to ``processing``); None if none runs."""
    row = await conn.fetchrow(
        f"""UPDATE dojo_recordings SET status = 'processing', stopped_at = now()
            WHERE session_id = $1 AND status = 'recording' RETURNING {_COLUMNS}""",
        session_id,
    )
    return None if row is None else _recording(row)


async def running(conn: Any, session_id: UUID) -> Recording | None:
    """The session's running recording, if any."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM dojo_recordings WHERE session_id = $1 AND status = 'recording'",
        session_id,
    )
    return None if row is None else _recording(row)


async def get(conn: Any, session_id: UUID, recording_id: UUID) -> Recording | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM dojo_recordings WHERE session_id = $1 AND id = $2",
        session_id,
        recording_id,
    )
    return None if row is None else _recording(row)


async def by_id(conn: Any, recording_id: UUID) -> Recording | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM dojo_recordings WHERE id = $1", recording_id)
    return None if row is None else _recording(row)


async def of_session(conn: Any, session_id: UUID) -> list[Recording]:
    """The session's recordings, newest first."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM dojo_recordings WHERE session_id = $1
            ORDER BY started_at DESC, id""",
        session_id,
    )
    return [_recording(r) for r in rows]


async def add_part(conn: Any, recording: Recording, user_id: UUID, object_key: str) -> None:
    """A part a recorder peer is about to write (the mixing job waits for it)."""
    await conn.execute(
        """INSERT INTO dojo_recording_parts (recording_id, tenant_id, user_id, object_key)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        recording.id,
        recording.tenant_id,
        user_id,
        object_key,
    )


async def part_uploaded(
    conn: Any, recording_id: UUID, object_key: str, start_offset: float, size: int
) -> None:
    await conn.execute(
        """UPDATE dojo_recording_parts SET start_offset = $3, bytes = $4
           WHERE recording_id = $1 AND object_key = $2""",
        recording_id,
        object_key,
        start_offset,
        size,
    )


async def part_started(conn: Any, recording_id: UUID, object_key: str, offset: float) -> None:
    """The part's first audio came ``offset`` seconds after the recording started."""
    await conn.execute(
        """UPDATE dojo_recording_parts SET start_offset = $3
           WHERE recording_id = $1 AND object_key = $2""",
        recording_id,
        object_key,
        offset,
    )


@dataclass(frozen=True)
class LeftPart:
    """A part whose node died before uploading it."""

    recording_id: UUID
    start_offset: float | None
    mixed: bool  # its recording's mixing already ended without it


async def left_part(conn: Any, object_key: str) -> LeftPart | None:
    """The part stored under ``object_key`` if it was never uploaded."""
    row = await conn.fetchrow(
        """SELECT p.recording_id, p.start_offset, r.status IN ('ready', 'failed') AS mixed
           FROM dojo_recording_parts p JOIN dojo_recordings r ON r.id = p.recording_id
           WHERE p.object_key = $1 AND p.bytes IS NULL""",
        object_key,
    )
    return None if row is None else LeftPart(**dict(row))


async def mix_again(conn: Any, recording_id: UUID) -> None:
    """Put a mixed recording and its job back to be mixed again (a part came late)."""
    await conn.execute(
        "UPDATE dojo_recordings SET status = 'processing' WHERE id = $1", recording_id
    )
    await conn.execute(
        """UPDATE jobs SET status = 'queued', progress = 0, attempts = 0, error = NULL,
                  completed_at = NULL, heartbeat_at = now() WHERE id = $1""",
        recording_id,
    )


async def drop_part(conn: Any, recording_id: UUID, object_key: str) -> None:
    """A part no audio ever came for."""
    await conn.execute(
        "DELETE FROM dojo_recording_parts WHERE recording_id = $1 AND object_key = $2",
        recording_id,
        object_key,
    )


async def parts(conn: Any, recording_id: UUID) -> list[Part]:
    rows = await conn.fetch(
        """SELECT user_id, start_offset, object_key, bytes FROM dojo_recording_parts
           WHERE recording_id = $1 ORDER BY start_offset, object_key""",
        recording_id,
    )
    return [Part(**dict(r)) for r in rows]


def recording_event(recording: Recording, by: UUID) -> dict[str, Any]:
    """The ``recording`` event of a recording that started or stopped."""
    stopped = recording.stopped_at
    return {
        "type": "recording",
        "state": "started" if stopped is None else "stopped",
        "recordingId": str(recording.id),
        "by": str(by),
        "at": (stopped or recording.started_at).isoformat(),
    }


async def control(
    conn: Any, session_id: UUID, tenant_id: UUID, user_id: UUID, action: str
) -> Recording:
    """Start or stop the session's recording (the caller checked the host).

    Raises:
        Conflict: starting while one runs, stopping when none runs.
    """
    if action == "start":
        started = await start(conn, session_id, tenant_id, user_id)
        if started is None:
            raise Conflict("a recording is already running", code="recording_running")
        return started
    stopped = await stop_for_mixing(conn, session_id, tenant_id, user_id)
    if stopped is None:
        raise Conflict("no recording is running", code="not_recording")
    return stopped


async def stop_for_mixing(
    conn: Any, session_id: UUID, tenant_id: UUID, user_id: UUID
) -> Recording | None:
    """Stop the running recording, if any, with the job that mixes it (the recording's id;
    the caller queues it once committed)."""
    stopped = await stop(conn, session_id)
    if stopped is not None:
        await conn.execute(
            "INSERT INTO jobs (id, tenant_id, user_id, kind) VALUES ($1, $2, $3, 'recording')",
            stopped.id,
            tenant_id,
            user_id,
        )
    return stopped


# A code timeline row: (at, data, state, author); ``at`` is a wall-clock time when written,
# seconds from the recording's start when read.
TimelineRow = tuple[float, bytes, bool, UUID | None]


async def add_timeline(
    conn: Any, tenant_id: UUID, rows: Sequence[tuple[UUID, float, bytes, bool, UUID | None]]
) -> None:
    """Add rows (recording, at, data, state, author) to recordings' code timelines; written
    in the transaction of the update log rows they go with."""
    await conn.executemany(
        """INSERT INTO dojo_timeline (recording_id, tenant_id, at, data, state, author)
           VALUES ($1, $2, to_timestamp($3), $4, $5, $6)""",
        [(recording, tenant_id, *row) for recording, *row in rows],
    )


async def timeline_rows(conn: Any, recording: Recording) -> list[TimelineRow]:
    """The recording's code timeline rows, ``at`` in seconds from its start; those stored
    after it stopped (an update a node accepted before it heard of the stop) are left out."""
    rows = await conn.fetch(
        """SELECT extract(epoch FROM at - $2::timestamptz)::float8 AS at, data, state, author
           FROM dojo_timeline
           WHERE recording_id = $1 AND ($3::timestamptz IS NULL OR at <= $3)
           ORDER BY at, seq""",
        recording.id,
        recording.started_at,
        recording.stopped_at,
    )
    return [(r["at"], r["data"], r["state"], r["author"]) for r in rows]
