"""Dojo sessions over REST: create, join, status, start, end, list, chat history, snapshots."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import uuid
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, field_validator

from pocdojo.core import appkeys
from pocdojo.core.api import ApiModel, Ctx, Paged, Routes, paging
from pocdojo.core.colors import user_color
from pocdojo.core.db import audit
from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import jobs as jobs_db
from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import users as users_db
from pocdojo.core.errors import Conflict, Forbidden, NotFound
from pocdojo.core.ice import ice_servers
from pocdojo.crdt import document, timeline
from pocdojo.rest.fields import AwareTimestamp, Description, Language, PocTitle
from pocdojo.rest.jobs import queue_after_commit, signed_url
from pocdojo.rest.users import PageQuery

routes = Routes(tag="dojos")

_JOIN_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
_MAX_INITIAL_CODE = 1024 * 1024


class SessionCreate(ApiModel):
    title: PocTitle
    poc_id: UUID
    description: Description | None = None
    language: Language | None = None
    initial_code: str | None = Field(
        None, max_length=_MAX_INITIAL_CODE, description="no NUL characters"
    )
    max_participants: int = Field(10, ge=2, le=50)
    scheduled_at: AwareTimestamp | None = Field(None, description="in the future")
    host_user_id: UUID | None = None
    tenant_id: UUID | None = None

    @field_validator("scheduled_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("scheduledAt must be in the future")
        return value

    @field_validator("initial_code")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("initialCode must not contain NUL characters")
        return value


class IceServer(ApiModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceConfig(ApiModel):
    """What ``new RTCPeerConnection({iceServers})`` takes: STUN, and TURN with credentials
    valid for ``ttlSeconds`` (fetch them again before then)."""

    ice_servers: list[IceServer]
    ttl_seconds: int


class SessionCreated(ApiModel):
    session_id: UUID
    join_code: str
    status: str
    doc_url: str
    events_url: str
    participant_token: str
    role: str
    ice: IceConfig


class JoinRequest(ApiModel):
    join_code: str = Field(min_length=1, max_length=20)
    user_id: UUID | None = None
    role: Literal["participant", "observer"] = "participant"


class Joined(ApiModel):
    session_id: UUID
    doc_url: str
    events_url: str
    participant_token: str
    role: str
    ice: IceConfig


class ParticipantOut(ApiModel):
    user_id: UUID
    username: str
    full_name: str | None
    role: str
    joined_at: datetime
    online: bool


class SessionOut(ApiModel):
    session_id: UUID
    title: str
    description: str | None
    language: str | None
    status: str
    poc_id: UUID
    host_user_id: UUID
    max_participants: int
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    participants: list[ParticipantOut]
    recording_url: str | None = Field(
        description="the latest ready recording's mixed audio (Ogg/Opus; a signed link)"
    )
    join_code: str | None = Field(
        description="the code to join with: shown to those in the session (to invite others "
        "again), null to the rest of the tenant"
    )


class SessionSummary(ApiModel):
    session_id: UUID
    title: str
    status: str
    poc_id: UUID
    host_user_id: UUID
    scheduled_at: datetime | None
    started_at: datetime | None
    max_participants: int


class SessionList(Paged):
    sessions: list[SessionSummary]


class EndRequest(ApiModel):
    host_user_id: UUID | None = None


class EndSummary(ApiModel):
    duration: int = Field(description="seconds from start (or creation) to end")
    participant_count: int
    recording_url: str | None


class Ended(ApiModel):
    success: bool
    session_summary: EndSummary


class Started(ApiModel):
    session_id: UUID
    status: str
    started_at: datetime


class ChatQuery(ApiModel):
    before: AwareTimestamp | None = None
    limit: int = Field(50, ge=1, le=200)


class ChatMessageOut(ApiModel):
    id: UUID
    user_id: UUID
    username: str
    text: str
    sent_at: datetime


class ChatPage(ApiModel):
    messages: list[ChatMessageOut]


class SnapshotOut(ApiModel):
    id: int
    taken_at: datetime
    reason: str
    code: str


class SnapshotList(ApiModel):
    snapshots: list[SnapshotOut]


class RecordingAction(ApiModel):
    action: Literal["start", "stop"]


class RecordingOut(ApiModel):
    """A recording of the session's voice; its audio links come once it is ``ready``."""

    recording_id: UUID
    status: str = Field(description="recording, processing, ready or failed")
    progress: int = Field(description="how far the mixing is, 0-100")
    started_at: datetime
    stopped_at: datetime | None
    duration: float | None = Field(description="seconds of the mixed audio, once ready")
    participants: list[UUID]
    ogg_url: str | None = Field(description="the mix as Ogg/Opus (a signed, expiring link)")
    m4a_url: str | None = Field(alias="m4aUrl", description="the mix as M4A/AAC, for Apple devices")
    error: str | None = Field(description="why the mixing failed")


class RecordingList(ApiModel):
    recordings: list[RecordingOut]


class CodeAtQuery(ApiModel):
    at: float = Field(
        ge=0,
        le=10_000_000,
        allow_inf_nan=False,
        description="seconds from the recording's start; past its end, the code at its end",
    )


class CodeAt(ApiModel):
    """The code as it stood ``at`` seconds into the recording."""

    recording_id: UUID
    at: float
    code: str


class TimelineAuthor(ApiModel):
    user_id: UUID
    username: str
    color: str = Field(description="the author's colour (#rrggbb), as in the web app")


class TimelineStep(ApiModel):
    t: float = Field(description="seconds from the recording's start")
    u: str = Field(description="a Yjs update (base64): what changed at t")
    a: int | None = Field(description="the author, an index into ``authors``; null if unknown")


class TimelineAudio(ApiModel):
    ogg: str | None = Field(description="the mixed voice as Ogg/Opus, once ready (signed link)")
    m4a: str | None = Field(
        alias="m4a", description="the mixed voice as M4A/AAC, once ready (signed link)"
    )


class TimelineOut(ApiModel):
    """What a player needs to scrub the code and the voice together: apply ``base`` to an
    empty Yjs document, then every step whose ``t`` is at most the position; the code is the
    ``Y.Text`` named ``code``."""

    recording_id: UUID
    status: str = Field(description="recording, processing, ready or failed")
    started_at: datetime
    duration: float | None = Field(description="seconds; null while recording")
    language: str | None
    authors: list[TimelineAuthor]
    base: str = Field(description="the document at second 0, as a Yjs update (base64)")
    steps: list[TimelineStep] = Field(description="in order of t")
    audio: TimelineAudio


def _urls(ctx: Ctx, session_id: UUID) -> tuple[str, str]:
    scheme = "wss" if ctx.request.scheme == "https" else "ws"
    base = f"{scheme}://{ctx.request.host}/v1/dojos/sessions/{session_id}"
    return f"{base}/doc", f"{base}/events"


async def _session(ctx: Ctx, *, for_update: bool = False) -> dojos_db.DojoSession:
    session = await dojos_db.get(
        ctx.conn, ctx.path_id("sessionId", "session"), for_update=for_update
    )
    if session is None:
        raise NotFound("session not found")
    return session


def _token(ctx: Ctx, session_id: UUID, role: str) -> str:
    me = ctx.principal
    return ctx.app[appkeys.participant_tokens_key].issue(
        user_id=me.user_id,
        tenant_id=me.tenant_id,
        session_id=session_id,
        role=role,
        login_session_id=me.session_id,
    )


def _require_host(ctx: Ctx, session: dojos_db.DojoSession) -> None:
    if session.host_user_id != ctx.principal.user_id:
        raise Forbidden("only the session's host can do this", code="not_host")


@routes.op(
    "POST",
    "/v1/dojos/sessions",
    response=SessionCreated,
    status=201,
    roles=("admin", "user"),
    errors=(403, 404),
)
async def create_session(ctx: Ctx, body: SessionCreate) -> SessionCreated:
    """Create a dojo session for a POC of the tenant; the caller is its host.

    The shared document's ``code`` text starts as ``initialCode``. The answer carries the
    host's participant token and the two socket URLs.
    """
    me = ctx.principal
    ctx.require_tenant(body.tenant_id)
    if body.host_user_id is not None and body.host_user_id != me.user_id:
        raise Forbidden("hostUserId must be the caller", code="user_mismatch")
    if await pocs_db.get(ctx.conn, me.tenant_id, body.poc_id) is None:
        raise NotFound("POC not found")
    session_id = uuid.uuid4()
    session = await dojos_db.insert(
        ctx.conn,
        id=session_id,
        tenant_id=me.tenant_id,
        poc_id=body.poc_id,
        host_user_id=me.user_id,
        title=body.title,
        description=body.description,
        language=body.language,
        max_participants=body.max_participants,
        join_code="".join(secrets.choice(_JOIN_ALPHABET) for _ in range(8)),
        scheduled_at=body.scheduled_at,
    )
    await dojos_db.add_participant(
        ctx.conn, session_id=session_id, tenant_id=me.tenant_id, user_id=me.user_id, role="host"
    )
    initial = document.new_doc(body.initial_code or "").get_update()
    await dojos_db.save_snapshot(ctx.conn, session_id, me.tenant_id, initial, [])
    await audit.record(ctx.conn, ctx.actor(), "create", "dojo_session", session_id)
    doc_url, events_url = _urls(ctx, session_id)
    return SessionCreated(
        session_id=session.id,
        join_code=session.join_code,
        status=session.status,
        doc_url=doc_url,
        events_url=events_url,
        participant_token=_token(ctx, session_id, "host"),
        role="host",
        ice=_ice(ctx),
    )


@routes.op(
    "POST", "/v1/dojos/sessions/{sessionId:uuid}/join", response=Joined, errors=(403, 404, 409)
)
async def join_session(ctx: Ctx, body: JoinRequest) -> Joined:
    """Join with the session's join code (optionally as a read-only observer).

    Joining again returns a fresh token with the role already held. An ended session (409
    session_ended) or a full one (409 session_full) cannot be joined; viewers always join as
    observers.
    """
    me = ctx.principal
    if body.user_id is not None and body.user_id != me.user_id:
        raise Forbidden("userId does not match the token", code="user_mismatch")
    session = await _session(ctx, for_update=True)
    # As bytes: compare_digest refuses str holding anything but ASCII.
    code = body.join_code.strip().upper().encode()
    if not hmac.compare_digest(code, session.join_code.encode()):
        raise Forbidden("wrong join code", code="invalid_join_code")
    if session.status == "ended":
        raise Conflict("the session has ended", code="session_ended")
    role = await dojos_db.participant_role(ctx.conn, session.id, me.user_id)
    if role is None:
        if await dojos_db.count_participants(ctx.conn, session.id) >= session.max_participants:
            raise Conflict("the session is full", code="session_full")
        role = "observer" if me.role == "viewer" else body.role
        await dojos_db.add_participant(
            ctx.conn, session_id=session.id, tenant_id=me.tenant_id, user_id=me.user_id, role=role
        )
        await audit.record(
            ctx.conn, ctx.actor(), "join", "dojo_session", session.id, {"role": role}
        )
    doc_url, events_url = _urls(ctx, session.id)
    return Joined(
        session_id=session.id,
        doc_url=doc_url,
        events_url=events_url,
        participant_token=_token(ctx, session.id, role),
        role=role,
        ice=_ice(ctx),
    )


@routes.op(
    "GET", "/v1/dojos/sessions/{sessionId:uuid}/ice", response=IceConfig, errors=(403, 404, 409)
)
async def session_ice(ctx: Ctx) -> IceConfig:
    """The ICE servers for the session's voice (participants and observers only): STUN
    URLs, and TURN URLs with credentials for the caller that expire after ``ttlSeconds``."""
    session = await _session(ctx)
    if await dojos_db.participant_role(ctx.conn, session.id, ctx.principal.user_id) is None:
        raise Forbidden("not a participant of this session", code="not_participant")
    if session.status == "ended":
        raise Conflict("the session has ended", code="session_ended")
    return _ice(ctx)


def _ice(ctx: Ctx) -> IceConfig:
    return IceConfig.model_validate(ice_servers(ctx.settings, ctx.principal.user_id))


@routes.op("GET", "/v1/dojos/sessions", response=SessionList)
async def list_sessions(ctx: Ctx, query: PageQuery) -> SessionList:
    """The tenant's scheduled and active sessions, soonest first."""
    found, total = await dojos_db.open_sessions(
        ctx.conn, limit=query.limit, offset=(query.page - 1) * query.limit
    )
    return SessionList(
        sessions=[
            SessionSummary(
                session_id=s.id,
                title=s.title,
                status=s.status,
                poc_id=s.poc_id,
                host_user_id=s.host_user_id,
                scheduled_at=s.scheduled_at,
                started_at=s.started_at,
                max_participants=s.max_participants,
            )
            for s in found
        ],
        **paging(query.page, query.limit, total),
    )


@routes.op("GET", "/v1/dojos/sessions/{sessionId:uuid}", response=SessionOut, errors=(404,))
async def get_session(ctx: Ctx) -> SessionOut:
    """A session with its participants: role, when they joined, and whether online now."""
    session = await _session(ctx)
    people = await dojos_db.participants(ctx.conn, session.id)
    online = await ctx.app[appkeys.live_rooms_key].online(session.id)
    member = any(p.user_id == ctx.principal.user_id for p in people)
    return SessionOut(
        join_code=session.join_code if member else None,
        session_id=session.id,
        title=session.title,
        description=session.description,
        language=session.language,
        status=session.status,
        poc_id=session.poc_id,
        host_user_id=session.host_user_id,
        max_participants=session.max_participants,
        scheduled_at=session.scheduled_at,
        started_at=session.started_at,
        ended_at=session.ended_at,
        created_at=session.created_at,
        recording_url=await _latest_recording_url(ctx, session.id),
        participants=[
            ParticipantOut(
                user_id=p.user_id,
                username=p.username,
                full_name=p.full_name,
                role=p.role,
                joined_at=p.joined_at,
                online=str(p.user_id) in online,
            )
            for p in people
        ],
    )


@routes.op(
    "POST",
    "/v1/dojos/sessions/{sessionId:uuid}/start",
    response=Started,
    roles=("admin", "user"),
    errors=(403, 404, 409),
)
async def start_session(ctx: Ctx) -> Started:
    """Start the session (host only); starting an active session again changes nothing."""
    session = await _session(ctx, for_update=True)
    _require_host(ctx, session)
    if session.status == "ended":
        raise Conflict("the session has ended", code="session_ended")
    session = await dojos_db.set_status(ctx.conn, session.id, "active")
    await audit.record(ctx.conn, ctx.actor(), "start", "dojo_session", session.id)
    assert session.started_at is not None
    return Started(session_id=session.id, status=session.status, started_at=session.started_at)


@routes.op(
    "POST",
    "/v1/dojos/sessions/{sessionId:uuid}/end",
    response=Ended,
    roles=("admin", "user"),
    errors=(403, 404, 409),
)
async def end_session(ctx: Ctx, body: EndRequest | None = None) -> Ended:
    """End the session (host only): everyone is disconnected (close code 4410), and the final
    code is kept in the session's snapshots. The body is optional."""
    session = await _session(ctx, for_update=True)
    _require_host(ctx, session)
    if body is not None and body.host_user_id not in (None, ctx.principal.user_id):
        raise Forbidden("hostUserId must be the caller", code="user_mismatch")
    if session.status == "ended":
        raise Conflict("the session has already ended", code="session_ended")
    session = await dojos_db.set_status(ctx.conn, session.id, "ended")
    count = await dojos_db.count_participants(ctx.conn, session.id)
    await audit.record(ctx.conn, ctx.actor(), "end", "dojo_session", session.id)
    rooms = ctx.app[appkeys.live_rooms_key]
    me = ctx.principal.user_id
    stopped = await recordings_db.stop_for_mixing(ctx.conn, session.id, session.tenant_id, me)
    if stopped is not None:  # ending stops the recording: its parts are uploaded and mixed
        await queue_after_commit(ctx, "recording", stopped.id)
        event = recordings_db.recording_event(stopped, me)
        ctx.after_commit(lambda: rooms.recording_changed(session.id, session.tenant_id, event))
    ended = session
    ctx.after_commit(lambda: rooms.end(ended.id, ended.tenant_id))
    assert session.ended_at is not None
    start = session.started_at or session.created_at
    return Ended(
        success=True,
        session_summary=EndSummary(
            duration=max(0, int((session.ended_at - start).total_seconds())),
            participant_count=count,
            recording_url=await _latest_recording_url(ctx, session.id),
        ),
    )


@routes.op("GET", "/v1/dojos/sessions/{sessionId:uuid}/chat", response=ChatPage, errors=(403, 404))
async def chat_history(ctx: Ctx, query: ChatQuery) -> ChatPage:
    """Chat messages, oldest first: the newest ``limit``, or those sent before ``before``
    (pass the oldest ``sentAt`` you have to page back). Participants only."""
    session = await _participant_session(ctx)
    found = await dojos_db.chat_page(ctx.conn, session.id, before=query.before, limit=query.limit)
    return ChatPage(
        messages=[
            ChatMessageOut(
                id=m.id, user_id=m.user_id, username=m.username, text=m.text, sent_at=m.sent_at
            )
            for m in found
        ]
    )


@routes.op(
    "GET", "/v1/dojos/sessions/{sessionId:uuid}/snapshots", response=SnapshotList, errors=(403, 404)
)
async def snapshots(ctx: Ctx) -> SnapshotList:
    """The code as it stood at intervals while the session ran and when it ended."""
    session = await _participant_session(ctx)
    found = await dojos_db.history(ctx.conn, session.id)
    return SnapshotList(
        snapshots=[
            SnapshotOut(id=h.id, taken_at=h.taken_at, reason=h.reason, code=h.code) for h in found
        ]
    )


@routes.op(
    "POST",
    "/v1/dojos/sessions/{sessionId:uuid}/recording",
    response=RecordingOut,
    roles=("admin", "user"),
    errors=(403, 404, 409),
)
async def control_recording(ctx: Ctx, body: RecordingAction) -> RecordingOut:
    """Start or stop recording the session's voice (host only), as the host's events socket
    does: everyone gets a ``recording`` event. Starting while a recording runs, or stopping
    when none runs, is 409."""
    session = await _session(ctx, for_update=True)
    _require_host(ctx, session)
    if body.action == "start" and session.status == "ended":
        raise Conflict("the session has ended", code="session_ended")
    me = ctx.principal.user_id
    recording = await recordings_db.control(
        ctx.conn, session.id, session.tenant_id, me, body.action
    )
    if body.action == "stop":
        await queue_after_commit(ctx, "recording", recording.id)
    event = recordings_db.recording_event(recording, me)
    rooms = ctx.app[appkeys.live_rooms_key]
    ctx.after_commit(lambda: rooms.recording_changed(session.id, session.tenant_id, event))
    return await _recording_out(ctx, recording)


@routes.op(
    "GET",
    "/v1/dojos/sessions/{sessionId:uuid}/recordings",
    response=RecordingList,
    errors=(403, 404),
)
async def list_recordings(ctx: Ctx) -> RecordingList:
    """The session's recordings, newest first (participants only)."""
    session = await _participant_session(ctx)
    found = await recordings_db.of_session(ctx.conn, session.id)
    return RecordingList(recordings=[await _recording_out(ctx, r) for r in found])


@routes.op(
    "GET",
    "/v1/dojos/sessions/{sessionId:uuid}/recordings/{recordingId:uuid}",
    response=RecordingOut,
    errors=(403, 404),
)
async def get_recording(ctx: Ctx) -> RecordingOut:
    """One recording: status, audio links once ready, duration, participants."""
    return await _recording_out(ctx, await _recording_of_path(ctx))


@routes.op(
    "GET",
    "/v1/dojos/sessions/{sessionId:uuid}/recordings/{recordingId:uuid}/code",
    response=CodeAt,
    errors=(400, 403, 404),
)
async def recording_code(ctx: Ctx, query: CodeAtQuery) -> CodeAt:
    """The code as it stood a given second into a recording (participants only)."""
    recording = await _recording_of_path(ctx)
    found = await timeline.load(ctx.conn, recording)
    code = await asyncio.to_thread(timeline.code_at, found, query.at)
    return CodeAt(recording_id=recording.id, at=query.at, code=code)


@routes.op(
    "GET",
    "/v1/dojos/sessions/{sessionId:uuid}/recordings/{recordingId:uuid}/timeline",
    response=TimelineOut,
    errors=(403, 404),
)
async def recording_timeline(ctx: Ctx) -> TimelineOut:
    """A recording's code over time and its audio links, for a player that scrubs both
    together (participants only)."""
    session = await _participant_session(ctx)
    recording = await _recording_of_path(ctx, session)
    found = timeline.coalesced(await timeline.load(ctx.conn, recording))
    authors = found.authors()
    names = await users_db.usernames(ctx.conn, authors)
    index = {user: i for i, user in enumerate(authors)}
    out = await _recording_out(ctx, recording)
    duration = recording.duration
    if duration is None and recording.stopped_at is not None:
        duration = (recording.stopped_at - recording.started_at).total_seconds()
    return TimelineOut(
        recording_id=recording.id,
        status=out.status,
        started_at=recording.started_at,
        duration=duration,
        language=session.language,
        authors=[
            TimelineAuthor(user_id=u, username=names.get(u, ""), color=user_color(u))
            for u in authors
        ],
        base=timeline.b64(found.base),
        steps=[
            TimelineStep(
                t=round(s.t, 3),
                u=timeline.b64(s.update),
                a=None if s.author is None else index[s.author],
            )
            for s in found.steps
        ],
        audio=TimelineAudio(ogg=out.ogg_url, m4a=out.m4a_url),
    )


async def _recording_of_path(
    ctx: Ctx, session: dojos_db.DojoSession | None = None
) -> recordings_db.Recording:
    """The path's recording, of the path's session, for a participant."""
    if session is None:
        session = await _participant_session(ctx)
    recording = await recordings_db.get(
        ctx.conn, session.id, ctx.path_id("recordingId", "recording")
    )
    if recording is None:
        raise NotFound("recording not found")
    return recording


async def _latest_recording_url(ctx: Ctx, session_id: UUID) -> str | None:
    ready = [r for r in await recordings_db.of_session(ctx.conn, session_id) if r.ogg_key]
    return await _audio_link(ctx, ready[0], "ogg") if ready else None


async def _audio_link(
    ctx: Ctx, recording: recordings_db.Recording, ext: Literal["ogg", "m4a"]
) -> str | None:
    """A signed link to the recording's mix (None until it is ready)."""
    key, content_type = (
        (recording.ogg_key, "audio/ogg") if ext == "ogg" else (recording.m4a_key, "audio/mp4")
    )
    filename = f"dojo-recording-{recording.id}.{ext}"
    return await signed_url(ctx, key, filename=filename, content_type=content_type)


async def _recording_out(ctx: Ctx, recording: recordings_db.Recording) -> RecordingOut:
    mixing: jobs_db.RecordingMix | None = await jobs_db.get(ctx.conn, "recording", recording.id)
    failed = mixing is not None and mixing.job.status == "failed"
    return RecordingOut(
        recording_id=recording.id,
        status="failed" if failed else recording.status,
        progress=100 if recording.status == "ready" else mixing.job.progress if mixing else 0,
        started_at=recording.started_at,
        stopped_at=recording.stopped_at,
        duration=recording.duration,
        participants=recording.participants,
        ogg_url=await _audio_link(ctx, recording, "ogg"),
        m4a_url=await _audio_link(ctx, recording, "m4a"),
        error=mixing.job.error if failed and mixing else None,
    )


async def _participant_session(ctx: Ctx) -> dojos_db.DojoSession:
    """The session of the path, if the caller takes part in it (or is an admin)."""
    session = await _session(ctx)
    await _require_participant(ctx, session)
    return session


async def _require_participant(ctx: Ctx, session: dojos_db.DojoSession) -> None:
    me = ctx.principal
    if me.role == "admin":
        return
    if await dojos_db.participant_role(ctx.conn, session.id, me.user_id) is None:
        raise Forbidden("only participants can read this", code="not_participant")
