"""The recording job: a dojo recording's parts, once every node uploaded its own (or a bounded
wait passed), aligned by their offsets and mixed into Ogg/Opus and M4A/AAC files."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.objectstore import recording_key
from pocdojo.jobs.runtime import Deps, PermanentJobError, Progress
from pocdojo.media.mix import RATE, Track, encode, mix


async def _uploaded_parts(
    deps: Deps, job: jobs_db.Job
) -> tuple[recordings_db.Recording, list[recordings_db.Part]]:
    """The recording and its uploaded parts, once none is pending or the wait is over."""
    deadline = time.monotonic() + deps.settings.recording_upload_wait
    while True:
        async with tenant_tx(deps.pool, job.tenant_id) as conn:
            found = await recordings_db.by_id(conn, job.id)
            parts = await recordings_db.parts(conn, job.id)
        if found is None:
            raise PermanentJobError("the recording no longer exists")
        if all(p.bytes is not None for p in parts) or time.monotonic() > deadline:
            return found, [p for p in parts if p.bytes is not None]
        await asyncio.sleep(0.5)


async def mix_recording(deps: Deps, job: jobs_db.Job, progress: Progress) -> dict[str, Any]:
    """Mix the recording ``job`` names and store its audio files."""
    recording, parts = await _uploaded_parts(deps, job)
    if not parts:
        raise PermanentJobError("nothing was recorded: no participant sent audio")
    name = str(recording.id)
    ogg_key = recording_key(job.tenant_id, recording.session_id, f"{name}.ogg")
    m4a_key = recording_key(job.tenant_id, recording.session_id, f"{name}.m4a")
    with tempfile.TemporaryDirectory(prefix="pocdojo-recording-") as tmp:
        tracks = []
        for i, part in enumerate(parts):
            path = Path(tmp) / f"part-{i}.ogg"
            path.write_bytes(await deps.store.get(part.object_key))
            tracks.append(Track(path, part.start_offset or 0.0))
        samples = await asyncio.to_thread(mix, tracks, lambda done: progress.report(int(done * 60)))
        ogg, m4a = Path(tmp) / "mix.ogg", Path(tmp) / "mix.m4a"
        await asyncio.to_thread(encode, samples, ogg, "ogg")
        progress.report(75)
        await asyncio.to_thread(encode, samples, m4a, "ipod")
        progress.report(90)
        await deps.store.put_file(ogg_key, ogg, "audio/ogg")
        await deps.store.put_file(m4a_key, m4a, "audio/mp4")
    return {
        "status": "ready",
        "ogg_key": ogg_key,
        "m4a_key": m4a_key,
        "duration": len(samples) / RATE,
        "participants": sorted({p.user_id for p in parts}),
    }
