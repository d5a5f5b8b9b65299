"""Voice presence in a dojo: who is in the call, muted, speaking, as their clients report it.

The audio itself goes peer to peer (WebRTC, signaled over the events socket). A user's
state is kept in Redis, one hash per session (``dojo:{id}:voice``: user id -> JSON), so a
socket joining on any node learns it in its welcome; every change is an event to everyone.
A user's state goes when the events socket that set it closes; one whose node died drops
out with the node's sockets from "online", which the welcome filters by.

A user is in the call from one events socket at a time (``connection``, in their ``voice``
events): joining from another tab or device takes the call over. The socket it was on is no
longer in the call (its closing changes nothing), signals to the user go to the socket in
the call, and the page that had the call leaves it without saying so (see docs/realtime.md).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable
from typing import Any, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from pocdojo.core.redisclient import REDIS_DOWN, AnyRedis, register_script

_TTL = 24 * 3600  # the hash outlives no session by long


class VoiceState(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    in_voice: bool = Field(alias="inVoice")
    muted: bool = False
    speaking: bool = False
    # The events socket (its peer id) the user is in the call from; None out of the call.
    connection: str | None = None

    def event(self, user_id: UUID) -> dict[str, Any]:
        return {
            "type": "voice",
            "userId": str(user_id),
            **self.model_dump(by_alias=True, exclude_none=True),
        }


LEFT = VoiceState(in_voice=False)


def _key(session_id: UUID) -> str:
    return f"dojo:{session_id}:voice"


# Forgets a user's state (KEYS[1], field ARGV[1]) if the socket ARGV[2] set it; 1 if it did.
_LEAVE = """
local state = redis.call('HGET', KEYS[1], ARGV[1])
if state and string.find(state, '"connection":"' .. ARGV[2] .. '"', 1, true) then
    return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


async def store(redis: AnyRedis, session_id: UUID, user_id: UUID, state: VoiceState) -> None:
    """Keep the state of a user in the call. Redis being down loses it for later joiners
    only; the event still goes out."""
    with contextlib.suppress(*REDIS_DOWN):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hset(_key(session_id), str(user_id), state.model_dump_json(by_alias=True))
            pipe.expire(_key(session_id), _TTL)
            await pipe.execute()


async def leave(redis: AnyRedis, session_id: UUID, user_id: UUID, connection: str) -> bool:
    """Forget a user's state if the socket ``connection`` set it; whether the user left the
    call (not if another socket of theirs took it over meanwhile, on any node). With Redis
    down, the user is taken to have left."""
    try:
        script = register_script(redis, _LEAVE)
        return bool(await script(keys=[_key(session_id)], args=[str(user_id), connection]))
    except REDIS_DOWN:
        return True


async def connection_of(redis: AnyRedis, session_id: UUID, user_id: UUID) -> str | None:
    """The socket a user is in the call from, as Redis has it (None: not in the call, or
    Redis down)."""
    try:
        raw = await cast(Awaitable[bytes | None], redis.hget(_key(session_id), str(user_id)))
    except REDIS_DOWN:
        return None
    return None if raw is None else VoiceState.model_validate(json.loads(raw)).connection


async def in_call(redis: AnyRedis, session_id: UUID, online: set[str]) -> list[dict[str, Any]]:
    """The ``voice`` events of those in the call now, of users still online."""
    try:
        found = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(_key(session_id)))
    except REDIS_DOWN:
        return []
    states = []
    for user, raw in sorted(found.items()):
        user_id = user.decode()
        if user_id in online:
            state = VoiceState.model_validate(json.loads(raw))
            states.append(state.event(UUID(user_id)))
    return states


def taken_over(text: str) -> tuple[UUID, str] | None:
    """The user and the socket of a ``voice`` event (JSON text) that puts a user in the call,
    or None for any other event."""
    if not text.startswith('{"type": "voice"'):
        return None
    event = json.loads(text)
    connection = event.get("connection")
    if not event.get("inVoice") or not isinstance(connection, str):
        return None
    return UUID(event["userId"]), connection
