"""Voice presence in a dojo: who is in the call, muted, speaking, as their clients report it.

The audio itself goes peer to peer (WebRTC, signaled over the events socket). A user's
state is kept in Redis, one hash per session (``dojo:{id}:voice``: user id -> JSON), so a
socket joining on any node learns it in its welcome; every change is an event to everyone.
A user's state goes when the events socket that set it closes; one whose node died drops
out with the node's sockets from "online", which the welcome filters by.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable
from typing import Any, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from pocdojo.core.redisclient import REDIS_DOWN, AnyRedis

_TTL = 24 * 3600  # the hash outlives no session by long


class VoiceState(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    in_voice: bool = Field(alias="inVoice")
    muted: bool = False
    speaking: bool = False

    def event(self, user_id: UUID) -> dict[str, Any]:
        return {"type": "voice", "userId": str(user_id), **self.model_dump(by_alias=True)}


LEFT = VoiceState(in_voice=False)


def _key(session_id: UUID) -> str:
    return f"dojo:{session_id}:voice"


async def store(redis: AnyRedis, session_id: UUID, user_id: UUID, state: VoiceState) -> None:
    """Keep a user's state (forget it once they leave the call). Redis being down loses
    it for later joiners only; the event still goes out."""
    with contextlib.suppress(*REDIS_DOWN):
        if state.in_voice:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hset(_key(session_id), str(user_id), state.model_dump_json(by_alias=True))
                pipe.expire(_key(session_id), _TTL)
                await pipe.execute()
        else:
            await cast(Awaitable[int], redis.hdel(_key(session_id), str(user_id)))


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
