"""A dojo document as PostgreSQL stores it, read straight from the tables by stock Yjs and by
pycrdt, the way any program reading them would (not through the server's own loader).

``read_rows`` takes the snapshot row and every logged update of a session in one consistent
read; ``YjsReader`` decodes them in a Node process running stock Yjs (tests/js/ystore.js);
``pycrdt_text`` decodes them with pycrdt.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from pocdojo.crdt import document
from tests.helpers import end_process


@dataclass(frozen=True)
class StoredRows:
    """A session's stored document: the snapshot (if any) and the update log, by ``seq``."""

    snapshot: bytes | None
    upto_seq: int
    updates: list[bytes]
    seqs: list[int]

    def describe(self) -> str:
        if self.snapshot is None:
            snap = "no snapshot"
        else:
            snap = f"snapshot upto_seq={self.upto_seq} ({len(self.snapshot)} B)"
        span = f"seq {self.seqs[0]}..{self.seqs[-1]}" if self.seqs else "none"
        return f"{snap}, {len(self.updates)} update rows ({span})"


async def read_rows(conn: Any, session_id: UUID) -> StoredRows:
    """The snapshot and every ``dojo_updates`` row of the session, as of one moment.

    ``conn`` is an asyncpg connection as the owner (row-level security does not apply).
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        snap = await conn.fetchrow(
            "SELECT upto_seq, state FROM dojo_snapshots WHERE session_id = $1", session_id
        )
        rows = await conn.fetch(
            "SELECT seq, data FROM dojo_updates WHERE session_id = $1 ORDER BY seq", session_id
        )
    return StoredRows(
        snapshot=bytes(snap["state"]) if snap else None,
        upto_seq=snap["upto_seq"] if snap else 0,
        updates=[bytes(r["data"]) for r in rows],
        seqs=[r["seq"] for r in rows],
    )


def pycrdt_text(rows: StoredRows) -> str:
    """The ``code`` text pycrdt reads from the rows (snapshot first, then the log in order)."""
    return document.doc_from(rows.snapshot, rows.updates).code()


@dataclass(frozen=True)
class YjsReading:
    """What stock Yjs reads from stored rows."""

    text: str
    # Per client, the clock Yjs is waiting for (updates held back for a missing dependency).
    pending_structs: dict[str, int] | None
    pending_ds: bool

    @property
    def pending(self) -> bool:
        return self.pending_structs is not None or self.pending_ds


class YjsReader:
    """A Node process decoding stored rows with stock Yjs, one request at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._lock = asyncio.Lock()
        self._next_id = 0

    @classmethod
    async def start(cls, js_dir: Path) -> YjsReader:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(js_dir / "ystore.js"),
            cwd=js_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        return cls(proc)

    async def read(self, rows: StoredRows) -> YjsReading:
        """Decode ``rows``; raises RuntimeError if Yjs cannot apply them."""
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        async with self._lock:
            self._next_id += 1
            request = {
                "id": self._next_id,
                "snapshot": b64(rows.snapshot) if rows.snapshot else None,
                "updates": [b64(u) for u in rows.updates],
            }
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            await self.proc.stdin.drain()
            line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ystore.js exited with {await self.proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        if not answer["ok"]:
            raise RuntimeError(f"stock Yjs could not read the stored rows: {answer['error']}")
        return YjsReading(answer["text"], answer["pendingStructs"], answer["pendingDs"])

    async def close(self) -> None:
        await end_process(self.proc)
