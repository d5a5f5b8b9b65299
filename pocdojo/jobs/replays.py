"""The replay video job: a recorded dojo's code as it changed, each author's characters in
their colour, with the recording's mixed voice, rendered to an MP4 and a thumbnail."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.core.db import users as users_db
from pocdojo.core.objectstore import replay_video_key, thumbnail_key
from pocdojo.crdt import timeline as timeline_mod
from pocdojo.crdt.authorship import authored
from pocdojo.jobs.runtime import Deps, PermanentJobError, Progress
from pocdojo.jobs.videos import store_video
from pocdojo.media.replay import CodeState, ReplaySpec, render_replay_video


def _states(timeline: timeline_mod.Timeline) -> Iterator[CodeState]:
    """The code over time, authors as user id strings (run in the rendering thread: the
    pycrdt document it replays into must stay in the thread that made it)."""
    for state in authored(timeline):
        authors = [None if a is None else str(a) for a in state.authors]
        yield CodeState(state.t, state.code, authors, state.edited)


async def make_replay_video(deps: Deps, job: jobs_db.Job, progress: Progress) -> dict[str, Any]:
    """Render the replay video ``job`` asks for and store it with its thumbnail."""
    async with tenant_tx(deps.pool, job.tenant_id) as conn:
        video: jobs_db.Video | None = await jobs_db.get(conn, "replay_video", job.id)
        if video is None or video.recording_id is None:
            raise PermanentJobError("the video no longer exists")
        recording = await recordings_db.by_id(conn, video.recording_id)
        if recording is None or recording.status != "ready" or recording.ogg_key is None:
            raise PermanentJobError("the recording is not ready")
        session = await dojos_db.get(conn, recording.session_id)
        timeline = await timeline_mod.load(conn, recording)
        authors = timeline.authors()
        names = await users_db.usernames(conn, authors)
    spec = ReplaySpec(
        title=session.title if session else "Dojo",
        language=session.language if session else None,
        duration=recording.duration or 0.0,
        authors={str(a): names.get(a, "someone") for a in authors},
    )
    key = replay_video_key(job.tenant_id, job.user_id, job.id)
    thumb = thumbnail_key(job.tenant_id, job.user_id, job.id)
    with tempfile.TemporaryDirectory(prefix="pocdojo-replay-") as tmp:
        voice, mp4, jpg = Path(tmp) / "voice.ogg", Path(tmp) / "video.mp4", Path(tmp) / "thumb.jpg"
        voice.write_bytes(await deps.store.get(recording.ogg_key))
        progress.report(2)
        result = await asyncio.to_thread(
            render_replay_video,
            spec,
            _states(timeline),
            mp4,
            jpg,
            audio=voice,
            progress=lambda p: progress.report(2 + p * 88 // 100),
        )
        stored = await store_video(deps, mp4, jpg, key, thumb)
    return {**stored, "duration": result.duration_seconds}
