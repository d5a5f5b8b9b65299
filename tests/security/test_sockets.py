"""Both dojo sockets against every bad token and every kind of caller.

A refused socket is upgraded and closed at once with its close code, before any frame; a plain
GET with the same token gets the status and error code that close code stands for. Nobody in
the room hears of the attempt (no presence, not counted online) and no row changes.

Who is admitted is checked here with the role the database holds now; what each role may do
once in (observers' edits dropped, recording for the host only) is in
tests/realtime/test_doc_socket.py and tests/realtime/test_events_socket.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from pocdojo.realtime.peer import CloseCode
from tests.dojo_helpers import Client, Dojo, join
from tests.helpers import Account, register
from tests.realtime.test_events_socket import send, until_pong
from tests.security.tokens import (
    WRONG_SECRET,
    claims_of,
    expired,
    signed,
    tampered,
    unsigned,
)
from tests.security.world import ENDINGS, Rows, Side, World, changes, end_login, refusal_of
from tests.yclient import YClient, edit_reaches_others, next_event

SOCKETS = ("doc", "events")
DEADLINE = 10.0


@dataclass(frozen=True)
class Refusal:
    """How a socket is refused: its close code, and a plain GET's status and error code."""

    close: int
    status: int
    code: str


INVALID = Refusal(CloseCode.UNAUTHORIZED, 401, "invalid_token")
EXPIRED = Refusal(CloseCode.UNAUTHORIZED, 401, "token_expired")
WRONG_SESSION = Refusal(CloseCode.FORBIDDEN, 403, "wrong_session")
REVOKED = Refusal(CloseCode.UNAUTHORIZED, 401, "session_revoked")
NOT_PARTICIPANT = Refusal(CloseCode.FORBIDDEN, 403, "not_participant")
NOT_FOUND = Refusal(CloseCode.NOT_FOUND, 404, "not_found")
ENDED = Refusal(CloseCode.ENDED, 410, "session_ended")


@dataclass(frozen=True)
class Attempt:
    session_id: str
    token: str | None
    refusal: Refusal


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def base_url(dojo: Dojo) -> str:
    return dojo.doc_url.split("/v1/", 1)[0]


async def patched(client: Client, admin: Account, user: Account, change: dict[str, object]) -> None:
    resp = await client.patch(f"/v1/users/{user.user_id}", headers=admin.auth, json=change)
    assert resp.status == 200, await resp.text()


async def member_token(side: Side, dojo: Dojo) -> tuple[Account, str]:
    """A new user of ``side`` who joined ``dojo`` as a participant, and their token."""
    member = await register(side.client, side.admin)
    return member, await join(side.client, dojo, member)


async def demoted_member(side: Side) -> str:
    """The token of a new participant of ``side``'s dojo whom the admin then made a viewer."""
    member, token = await member_token(side, side.dojo)
    await patched(side.client, side.admin, member, {"role": "viewer"})
    return token


async def attempts(world: World) -> dict[str, Attempt]:
    """Every way in that must be refused, on tenant ``a``'s dojo unless it says otherwise."""
    a, b = world.a, world.b
    session = a.dojo.session_id
    token = await join(a.client, a.dojo, a.member)
    claims = claims_of(token)
    outsider = {**claims, "sub": a.user.user_id, "lsid": a.user.session_id}
    other = await a.fresh_dojo()
    ended = await a.fresh_dojo()
    resp = await a.client.post(f"/v1/dojos/sessions/{ended.session_id}/end", headers=a.owner.auth)
    assert resp.status == 200, await resp.text()
    ended_logins = {}
    for how in ENDINGS:
        someone, their_token = await member_token(a, a.dojo)
        await end_login(a.client, a.admin, someone, how)
        # A deactivated user is no participant any more (and their login has ended too).
        refusal = NOT_PARTICIPANT if how == "deactivation" else REVOKED
        label = f"the token of a participant whose login ended by {how}"
        ended_logins[label] = Attempt(session, their_token, refusal)
    missing = str(uuid.uuid4())
    return ended_logins | {
        "no token": Attempt(session, None, INVALID),
        "an empty token": Attempt(session, "", INVALID),
        "a garbage token": Attempt(session, "x.y.z", INVALID),
        "an expired token": Attempt(session, expired(token), EXPIRED),
        "a token signed with another key": Attempt(session, signed(claims, WRONG_SECRET), INVALID),
        "an unsigned token (alg none)": Attempt(session, unsigned(claims), INVALID),
        "a token signed HS384 with the key": Attempt(session, signed(claims, alg="HS384"), INVALID),
        "a token, its role edited to host": Attempt(session, tampered(token, role="host"), INVALID),
        "a token, its user edited to an outsider's": Attempt(
            session, tampered(token, sub=a.user.user_id), INVALID
        ),
        "another session's token, its session edited": Attempt(
            session, tampered(other.host_token, dsid=session), INVALID
        ),
        "a token of another issuer": Attempt(
            session, signed({**claims, "iss": "elsewhere"}), INVALID
        ),
        "an access token": Attempt(session, a.member.token, INVALID),
        "a refresh token": Attempt(session, a.member.refresh_token, INVALID),
        "another session's token": Attempt(session, other.host_token, WRONG_SESSION),
        "a token of another tenant's session": Attempt(session, b.dojo.host_token, WRONG_SESSION),
        "a token the key signed for someone who never joined": Attempt(
            session, signed(outsider), NOT_PARTICIPANT
        ),
        "a token the key signed naming another tenant's session": Attempt(
            b.dojo.session_id, signed({**claims, "dsid": b.dojo.session_id}), NOT_FOUND
        ),
        "a token the key signed of another tenant, naming this session": Attempt(
            session, signed({**claims, "tid": b.tenant_id}), NOT_FOUND
        ),
        "a session id that is no id": Attempt("not-a-session", token, NOT_FOUND),
        "a token the key signed for a session that does not exist": Attempt(
            missing, signed({**claims, "dsid": missing}), NOT_FOUND
        ),
        "a token of an ended session": Attempt(ended.session_id, ended.host_token, ENDED),
    }


async def first_close(http: aiohttp.ClientSession, url: str, token: str | None) -> str:
    """Connect, and describe the first message: a close code, or what came instead."""
    params = {} if token is None else {"token": token}
    async with asyncio.timeout(DEADLINE):
        ws = await http.ws_connect(url, params=params)
        msg = await ws.receive()
        await ws.close()
    if msg.type != aiohttp.WSMsgType.CLOSE:
        return f"{msg.type.name} first"
    return str(ws.close_code)


async def test_every_bad_token_is_refused_on_both_sockets(
    world: World, rows: Rows, http: aiohttp.ClientSession
) -> None:
    a = world.a
    tries = await attempts(world)
    host = await http.ws_connect(a.dojo.events(a.dojo.host_token))
    await next_event(host, "welcome")
    await next_event(host, "presence")  # its own
    tenants = [a.tenant_id, world.b.tenant_id]
    wrong: list[str] = []
    for label, attempt in tries.items():
        for socket in SOCKETS:
            where = f"{socket} socket with {label}"
            path = f"/v1/dojos/sessions/{attempt.session_id}/{socket}"
            before = await rows.of(tenants)
            got = await first_close(http, base_url(a.dojo) + path, attempt.token)
            if got != str(attempt.refusal.close):
                wrong.append(f"{where}: got {got}, expected {attempt.refusal.close}")
            params = {} if attempt.token is None else {"token": attempt.token}
            resp = await a.client.get(path, params=params)
            plain = f"{resp.status} {await refusal_of(resp)}" if resp.status >= 400 else "200"
            expect = f"{attempt.refusal.status} {attempt.refusal.code}"
            if plain != expect:
                wrong.append(f"{where}, plain GET: got {plain}, expected {expect}")
            if changed := changes(before, await rows.of(tenants)):
                wrong.append(f"{where}: rows changed: {changed}")
    # The room heard of none of it.
    heard = await until_pong(host)
    resp = await a.client.get(f"/v1/dojos/sessions/{a.dojo.session_id}", headers=a.admin.auth)
    online = {p["userId"] for p in (await resp.json())["participants"] if p["online"]}
    await host.close()
    assert not wrong, "\n".join(["", *wrong])
    assert heard == []
    assert online == {a.owner.user_id}


async def test_each_participant_is_admitted_with_the_role_it_holds_now(
    world: World, http: aiohttp.ClientSession
) -> None:
    a = world.a
    people = {
        "host": (a.dojo.host_token, "host"),
        "member": (await join(a.client, a.dojo, a.member), "participant"),
        "watcher": (await join(a.client, a.dojo, a.watcher), "observer"),
        "a participant demoted to viewer": (await demoted_member(a), "observer"),
    }
    for who, (token, role) in people.items():
        ws = await http.ws_connect(a.dojo.events(token))
        hello = await next_event(ws, "welcome")
        assert hello["you"]["role"] == role, who
        await ws.close()
        doc = await YClient.connect(http, a.dojo.doc(token))
        async with asyncio.timeout(DEADLINE):
            await doc.synced.wait()
        await doc.close()


async def test_a_demoted_participants_edits_reach_no_one(
    world: World, http: aiohttp.ClientSession
) -> None:
    a = world.a
    token = await demoted_member(a)
    host = await YClient.connect(http, a.dojo.doc(a.dojo.host_token))
    them = await YClient.connect(http, a.dojo.doc(token))
    url = a.dojo.doc(a.dojo.host_token)
    assert not await edit_reaches_others(http, them, host, url, "# sneaky\n")
    for c in (host, them):
        await c.close()


async def test_nothing_said_in_one_tenants_room_reaches_another(
    world: World, http: aiohttp.ClientSession
) -> None:
    a, b = world.a, world.b
    theirs = await http.ws_connect(b.dojo.events(b.dojo.host_token))
    await next_event(theirs, "welcome")
    await next_event(theirs, "presence")  # its own
    ours = await http.ws_connect(a.dojo.events(a.dojo.host_token))
    await next_event(ours, "welcome")
    await send(ours, {"type": "chat", "text": "for tenant a only"})
    await next_event(ours, "chat")
    for kind in ("offer", "candidate"):
        await send(ours, {"type": "signal", "to": b.owner.user_id, "kind": kind, "data": {}})
    await until_pong(ours)
    assert [e["type"] for e in await until_pong(theirs)] == []
    await ours.close()
    await theirs.close()
