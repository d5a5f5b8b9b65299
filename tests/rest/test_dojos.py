"""Dojo sessions over REST: create, join, status, start/end, list, chat history, snapshots."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, create_poc, join
from tests.helpers import Account, error_of, register, signup
from tests.yclient import YClient, next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

JOIN_ALPHABET = frozenset("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
SESSIONS = "/v1/dojos/sessions"


def url(session_id: str, tail: str = "") -> str:
    return f"{SESSIONS}/{session_id}{tail}"


async def expect_error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a failure with ``status`` and ``code``; returns the error object."""
    assert resp.status == status, await resp.text()
    error = await error_of(resp)
    assert error["code"] == code, error
    return error


async def expect_rejected(resp: ClientResponse, field: str) -> None:
    """Assert a 422 whose details name ``field``."""
    error = await expect_error(resp, 422, "validation_failed")
    assert any(d["field"] == field for d in error["details"]), error["details"]


async def create(client: Client, account: Account, **fields: Any) -> ClientResponse:
    """POST a session on a fresh POC of ``account``'s tenant (fields override the body)."""
    body: dict[str, Any] = {"title": "Kata", "pocId": await create_poc(client, account)}
    body.update(fields)
    return await client.post(SESSIONS, headers=account.auth, json=body)


async def ok_json(resp: ClientResponse, status: int = 200) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def status_of(client: Client, account: Account, session_id: str) -> dict[str, Any]:
    return await ok_json(await client.get(url(session_id), headers=account.auth))


async def post_join(client: Client, dojo: Dojo, account: Account, **fields: Any) -> ClientResponse:
    body: dict[str, Any] = {"joinCode": dojo.join_code}
    body.update(fields)
    return await client.post(url(dojo.session_id, "/join"), headers=account.auth, json=body)


async def start(client: Client, account: Account, session_id: str) -> ClientResponse:
    return await client.post(url(session_id, "/start"), headers=account.auth)


async def end(client: Client, account: Account, session_id: str, **fields: Any) -> ClientResponse:
    return await client.post(url(session_id, "/end"), headers=account.auth, json=fields)


def participant(status: dict[str, Any], account: Account) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        p for p in status["participants"] if p["userId"] == account.user_id
    ]
    assert len(found) == 1, status["participants"]
    return found[0]


async def wait_online(
    client: Client, viewer: Account, session_id: str, who: Account, online: bool
) -> None:
    """Poll the session's status until ``who`` shows the given online flag."""
    async with asyncio.timeout(10):
        while True:
            status = await status_of(client, viewer, session_id)
            if participant(status, who)["online"] == online:
                return
            await asyncio.sleep(0.02)


async def chat_page(
    client: Client, account: Account, session_id: str, **params: Any
) -> list[dict[str, Any]]:
    resp = await client.get(url(session_id, "/chat"), headers=account.auth, params=params)
    messages: list[dict[str, Any]] = (await ok_json(resp))["messages"]
    return messages


# --- create ----------------------------------------------------------------------------------


async def test_create_answers_with_code_urls_and_host_token(client: Client, admin: Account) -> None:
    resp = await create(client, admin)
    body = await ok_json(resp, 201)
    assert set(body) == {
        "sessionId",
        "joinCode",
        "status",
        "docUrl",
        "eventsUrl",
        "participantToken",
        "role",
        "ice",
    }
    assert body["ice"] == {"iceServers": [], "ttlSeconds": 6 * 3600}  # none configured
    session_id = str(uuid.UUID(body["sessionId"]))
    assert body["status"] == "created"
    assert body["role"] == "host"
    assert body["participantToken"]
    base = f"ws://{client.server.host}:{client.server.port}/v1/dojos/sessions/{session_id}"
    assert body["docUrl"] == f"{base}/doc"
    assert body["eventsUrl"] == f"{base}/events"


async def test_join_codes_are_eight_unambiguous_characters(client: Client, admin: Account) -> None:
    codes = [(await create_dojo(client, admin)).join_code for _ in range(8)]
    for code in codes:
        assert len(code) == 8, code
        assert set(code) <= JOIN_ALPHABET, code
    assert len(set(codes)) == len(codes)


async def test_the_creator_is_the_host_participant(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    status = await status_of(client, admin, dojo.session_id)
    assert status["hostUserId"] == admin.user_id
    assert status["status"] == "created"
    assert [(p["userId"], p["username"], p["role"]) for p in status["participants"]] == [
        (admin.user_id, admin.username, "host")
    ]


async def test_create_requires_a_title(client: Client, admin: Account) -> None:
    poc_id = await create_poc(client, admin)
    resp = await client.post(SESSIONS, headers=admin.auth, json={"pocId": poc_id})
    await expect_rejected(resp, "title")


async def test_create_refuses_a_blank_title(client: Client, admin: Account) -> None:
    await expect_rejected(await create(client, admin, title="   "), "title")


async def test_create_accepts_a_200_character_title_and_refuses_201(
    client: Client, admin: Account
) -> None:
    await ok_json(await create(client, admin, title="t" * 200), 201)
    await expect_rejected(await create(client, admin, title="t" * 201), "title")


async def test_create_requires_a_poc(client: Client, admin: Account) -> None:
    resp = await client.post(SESSIONS, headers=admin.auth, json={"title": "Kata"})
    await expect_rejected(resp, "pocId")


async def test_create_with_an_unknown_poc_is_404(client: Client, admin: Account) -> None:
    resp = await create(client, admin, pocId=str(uuid.uuid4()))
    await expect_error(resp, 404, "not_found")


async def test_create_with_another_tenants_poc_is_404(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    their_poc = await create_poc(client, stranger)
    resp = await create(client, admin, pocId=their_poc)
    await expect_error(resp, 404, "not_found")


async def test_create_with_a_deleted_poc_is_404(client: Client, admin: Account) -> None:
    poc_id = await create_poc(client, admin)
    resp = await client.delete(f"/v1/pocs/{poc_id}", headers=admin.auth)
    assert resp.status == 200, await resp.text()
    await expect_error(await create(client, admin, pocId=poc_id), 404, "not_found")


async def test_max_participants_defaults_to_10(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    assert (await status_of(client, admin, dojo.session_id))["maxParticipants"] == 10


@pytest.mark.parametrize("value", [2, 50])
async def test_max_participants_accepts_its_bounds(
    client: Client, admin: Account, value: int
) -> None:
    body = await ok_json(await create(client, admin, maxParticipants=value), 201)
    assert (await status_of(client, admin, body["sessionId"]))["maxParticipants"] == value


@pytest.mark.parametrize("value", [1, 51])
async def test_max_participants_outside_2_to_50_is_422(
    client: Client, admin: Account, value: int
) -> None:
    await expect_rejected(await create(client, admin, maxParticipants=value), "maxParticipants")


async def test_scheduled_at_in_the_past_is_422(client: Client, admin: Account) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await expect_rejected(await create(client, admin, scheduledAt=past), "scheduledAt")


async def test_scheduled_at_without_a_time_zone_is_422(client: Client, admin: Account) -> None:
    naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
    await expect_rejected(await create(client, admin, scheduledAt=naive), "scheduledAt")


async def test_scheduled_at_past_year_9999_in_utc_is_422(client: Client, admin: Account) -> None:
    # In the future, and PostgreSQL could store it; but in UTC it is year 10000, which
    # Python's datetime (and so asyncpg) cannot hold.
    far = "9999-12-31T23:00:00-14:00"
    await expect_rejected(await create(client, admin, scheduledAt=far), "scheduledAt")


async def test_scheduled_at_in_the_future_is_kept(client: Client, admin: Account) -> None:
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    body = await ok_json(await create(client, admin, scheduledAt=when.isoformat()), 201)
    status = await status_of(client, admin, body["sessionId"])
    assert datetime.fromisoformat(status["scheduledAt"]) == when
    assert status["status"] == "created"


async def test_initial_code_seeds_the_document(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, initialCode="def kata():\n    return 42\n")
    async with aiohttp.ClientSession() as http:
        doc = await YClient.connect(http, dojo.doc(dojo.host_token))
        await doc.wait_for(lambda: doc.code == "def kata():\n    return 42\n")
        await doc.close()


async def test_without_initial_code_the_document_is_empty(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    async with aiohttp.ClientSession() as http:
        doc = await YClient.connect(http, dojo.doc(dojo.host_token))
        await doc.synced.wait()
        assert doc.code == ""
        await doc.close()


async def test_initial_code_with_nul_is_422(client: Client, admin: Account) -> None:
    await expect_rejected(await create(client, admin, initialCode="a\x00b"), "initialCode")


async def test_language_is_canonicalized(client: Client, admin: Account) -> None:
    body = await ok_json(await create(client, admin, language="  pYtHoN "), 201)
    assert (await status_of(client, admin, body["sessionId"]))["language"] == "Python"


async def test_unknown_language_is_422(client: Client, admin: Account) -> None:
    await expect_rejected(await create(client, admin, language="Klingon"), "language")


async def test_host_user_id_of_the_caller_is_accepted(client: Client, admin: Account) -> None:
    await ok_json(await create(client, admin, hostUserId=admin.user_id), 201)


async def test_host_user_id_of_someone_else_is_403(client: Client, admin: Account) -> None:
    other = await register(client, admin)
    resp = await create(client, admin, hostUserId=other.user_id)
    await expect_error(resp, 403, "user_mismatch")


async def test_tenant_id_of_another_tenant_is_403(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    resp = await create(client, admin, tenantId=stranger.tenant_id)
    await expect_error(resp, 403, "tenant_mismatch")


async def test_a_plain_user_can_create(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    body = await ok_json(await create(client, user), 201)
    assert (await status_of(client, user, body["sessionId"]))["hostUserId"] == user.user_id


async def test_a_viewer_cannot_create(client: Client, admin: Account) -> None:
    viewer = await register(client, admin, role="viewer")
    poc_id = await create_poc(client, admin)
    resp = await client.post(SESSIONS, headers=viewer.auth, json={"title": "Kata", "pocId": poc_id})
    await expect_error(resp, 403, "forbidden")


async def test_create_without_a_token_is_401(client: Client, admin: Account) -> None:
    poc_id = await create_poc(client, admin)
    resp = await client.post(SESSIONS, json={"title": "Kata", "pocId": poc_id})
    await expect_error(resp, 401, "missing_token")


async def test_create_refuses_unknown_fields(client: Client, admin: Account) -> None:
    await expect_rejected(await create(client, admin, joinCode="AAAAAAAA"), "joinCode")


# --- join ------------------------------------------------------------------------------------


async def test_join_answers_with_a_token_and_urls(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    body = await ok_json(await post_join(client, dojo, guest))
    assert body["sessionId"] == dojo.session_id
    assert body["role"] == "participant"
    assert body["docUrl"] == dojo.doc_url
    assert body["eventsUrl"] == dojo.events_url
    assert body["participantToken"]
    assert participant(await status_of(client, admin, dojo.session_id), guest)["role"] == (
        "participant"
    )


async def test_join_with_a_wrong_code_is_403(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    wrong = "".join(sorted(JOIN_ALPHABET - set(dojo.join_code)))[:8]
    resp = await post_join(client, dojo, guest, joinCode=wrong)
    await expect_error(resp, 403, "invalid_join_code")
    status = await status_of(client, admin, dojo.session_id)
    assert guest.user_id not in [p["userId"] for p in status["participants"]]


async def test_join_with_a_non_ascii_code_is_403(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    resp = await post_join(client, dojo, guest, joinCode="\u0097\u00e2")
    await expect_error(resp, 403, "invalid_join_code")


async def test_join_code_is_case_insensitive(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    resp = await post_join(client, dojo, guest, joinCode=f" {dojo.join_code.lower()} ")
    assert (await ok_json(resp))["role"] == "participant"


@pytest.mark.parametrize("code", ["", "A" * 21])
async def test_join_code_length_is_checked(client: Client, admin: Account, code: str) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    await expect_rejected(await post_join(client, dojo, guest, joinCode=code), "joinCode")


async def test_join_is_idempotent(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    first = await ok_json(await post_join(client, dojo, guest))
    # Asking again, even for another role, keeps the role already held.
    again = await ok_json(await post_join(client, dojo, guest, role="observer"))
    assert first["role"] == again["role"] == "participant"
    status = await status_of(client, admin, dojo.session_id)
    assert [p["userId"] for p in status["participants"]].count(guest.user_id) == 1
    assert len(status["participants"]) == 2


async def test_the_host_joining_again_stays_host(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    body = await ok_json(await post_join(client, dojo, admin))
    assert body["role"] == "host"
    assert len((await status_of(client, admin, dojo.session_id))["participants"]) == 1


async def test_join_as_observer(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    body = await ok_json(await post_join(client, dojo, guest, role="observer"))
    assert body["role"] == "observer"
    assert participant(await status_of(client, admin, dojo.session_id), guest)["role"] == (
        "observer"
    )


async def test_join_cannot_ask_to_be_host(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    await expect_rejected(await post_join(client, dojo, guest, role="host"), "role")


async def test_a_viewer_always_joins_as_observer(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    viewer = await register(client, admin, role="viewer")
    body = await ok_json(await post_join(client, dojo, viewer, role="participant"))
    assert body["role"] == "observer"
    assert participant(await status_of(client, admin, dojo.session_id), viewer)["role"] == (
        "observer"
    )


async def test_join_with_someone_elses_user_id_is_403(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    resp = await post_join(client, dojo, guest, userId=admin.user_id)
    await expect_error(resp, 403, "user_mismatch")


async def test_a_full_session_refuses_another_participant(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, maxParticipants=2)
    first, second = await register(client, admin), await register(client, admin)
    await join(client, dojo, first)
    await expect_error(await post_join(client, dojo, second), 409, "session_full")
    assert len((await status_of(client, admin, dojo.session_id))["participants"]) == 2


async def test_observers_count_towards_the_cap(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, maxParticipants=2)
    watcher, late = await register(client, admin), await register(client, admin)
    await join(client, dojo, watcher, role="observer")
    await expect_error(await post_join(client, dojo, late), 409, "session_full")
    await expect_error(await post_join(client, dojo, late, role="observer"), 409, "session_full")


async def test_a_member_can_rejoin_a_full_session(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, maxParticipants=2)
    guest = await register(client, admin)
    await join(client, dojo, guest)
    assert (await ok_json(await post_join(client, dojo, guest)))["role"] == "participant"


async def test_an_ended_session_cannot_be_joined(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    await ok_json(await end(client, admin, dojo.session_id))
    await expect_error(await post_join(client, dojo, guest), 409, "session_ended")


async def test_another_tenants_session_cannot_be_joined(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    # Even with the right code, the session does not exist for this tenant.
    await expect_error(await post_join(client, theirs, admin), 404, "not_found")


async def test_join_of_an_unknown_session_is_404(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    for bad in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await client.post(
            url(bad, "/join"), headers=guest.auth, json={"joinCode": dojo.join_code}
        )
        await expect_error(resp, 404, "not_found")


async def test_concurrent_joins_never_exceed_the_cap(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, maxParticipants=3)
    guests = [await register(client, admin) for _ in range(5)]
    responses = await asyncio.gather(*(post_join(client, dojo, g) for g in guests))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 200, 409, 409, 409], statuses
    for resp in responses:
        if resp.status == 409:
            assert (await error_of(resp))["code"] == "session_full"
    status = await status_of(client, admin, dojo.session_id)
    assert len(status["participants"]) == 3
    joined = {g.user_id for g, r in zip(guests, responses, strict=True) if r.status == 200}
    assert {p["userId"] for p in status["participants"]} == joined | {admin.user_id}


async def test_concurrent_joins_of_one_user_add_one_participant(
    client: Client, admin: Account
) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    responses = await asyncio.gather(*(post_join(client, dojo, guest) for _ in range(4)))
    assert [r.status for r in responses] == [200] * 4
    status = await status_of(client, admin, dojo.session_id)
    assert [p["userId"] for p in status["participants"]].count(guest.user_id) == 1


# --- status ----------------------------------------------------------------------------------


async def test_status_lists_participants_in_joining_order(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, title="Bowling kata", description="frames")
    guest = await register(client, admin)
    watcher = await register(client, admin)
    await join(client, dojo, guest)
    await join(client, dojo, watcher, role="observer")
    status = await status_of(client, guest, dojo.session_id)
    assert status["sessionId"] == dojo.session_id
    assert status["title"] == "Bowling kata"
    assert status["description"] == "frames"
    assert status["startedAt"] is None
    assert status["endedAt"] is None
    people = status["participants"]
    assert [(p["username"], p["role"]) for p in people] == [
        (admin.username, "host"),
        (guest.username, "participant"),
        (watcher.username, "observer"),
    ]
    joined = [datetime.fromisoformat(p["joinedAt"]) for p in people]
    assert joined == sorted(joined)
    assert all(t.tzinfo is not None for t in joined)
    assert [p["online"] for p in people] == [False, False, False]


async def test_the_join_code_is_shown_to_those_in_the_session_only(
    client: Client, admin: Account
) -> None:
    dojo = await create_dojo(client, admin)
    guest, bystander = await register(client, admin), await register(client, admin)
    await join(client, dojo, guest, role="observer")
    assert (await status_of(client, admin, dojo.session_id))["joinCode"] == dojo.join_code
    assert (await status_of(client, guest, dojo.session_id))["joinCode"] == dojo.join_code
    assert (await status_of(client, bystander, dojo.session_id))["joinCode"] is None


async def test_online_follows_the_events_socket(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(dojo.events(dojo.host_token))
        await next_event(ws, "welcome")
        status = await status_of(client, admin, dojo.session_id)
        assert participant(status, admin)["online"] is True
        assert participant(status, guest)["online"] is False
        await ws.close()
        await wait_online(client, admin, dojo.session_id, admin, False)


async def test_online_follows_the_doc_socket(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        doc = await YClient.connect(http, dojo.doc(token))
        await doc.synced.wait()
        status = await status_of(client, admin, dojo.session_id)
        assert participant(status, guest)["online"] is True
        assert participant(status, admin)["online"] is False
        await doc.close()
        await wait_online(client, admin, dojo.session_id, guest, False)


async def test_online_stays_while_another_socket_is_open(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    assert client.app is not None
    open_events = client.app[rooms_key].metrics.connections.labels("events")
    async with aiohttp.ClientSession() as http:
        doc = await YClient.connect(http, dojo.doc(dojo.host_token))
        await doc.synced.wait()
        ws = await http.ws_connect(dojo.events(dojo.host_token))
        await next_event(ws, "welcome")
        await ws.close()
        # Once the server has fully let go of the events socket (the gauge drops last)...
        async with asyncio.timeout(10):
            while True:
                if open_events._value.get() == 0:
                    break
                await asyncio.sleep(0.02)
        # ...the user is still online: the doc socket is open.
        assert participant(await status_of(client, admin, dojo.session_id), admin)["online"]
        await doc.close()
        await wait_online(client, admin, dojo.session_id, admin, False)


async def test_status_of_another_tenants_session_is_404(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    await expect_error(
        await client.get(url(theirs.session_id), headers=admin.auth), 404, "not_found"
    )


async def test_status_of_an_unknown_session_is_404(client: Client, admin: Account) -> None:
    for bad in (str(uuid.uuid4()), "nope"):
        await expect_error(await client.get(url(bad), headers=admin.auth), 404, "not_found")


async def test_status_without_a_token_is_401(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    await expect_error(await client.get(url(dojo.session_id)), 401, "missing_token")


# --- start and end ---------------------------------------------------------------------------


async def test_start_makes_the_session_active(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    before = datetime.now(UTC)
    body = await ok_json(await start(client, admin, dojo.session_id))
    assert body["sessionId"] == dojo.session_id
    assert body["status"] == "active"
    started = datetime.fromisoformat(body["startedAt"])
    assert before - timedelta(seconds=5) <= started <= datetime.now(UTC) + timedelta(seconds=5)
    status = await status_of(client, admin, dojo.session_id)
    assert status["status"] == "active"
    assert datetime.fromisoformat(status["startedAt"]) == started


async def test_start_is_idempotent(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    first = await ok_json(await start(client, admin, dojo.session_id))
    again = await ok_json(await start(client, admin, dojo.session_id))
    assert again["status"] == "active"
    assert again["startedAt"] == first["startedAt"]


async def test_only_the_host_can_start(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    await join(client, dojo, guest)
    await expect_error(await start(client, guest, dojo.session_id), 403, "not_host")
    assert (await status_of(client, admin, dojo.session_id))["status"] == "created"


async def test_only_the_host_can_end_not_even_an_admin(client: Client, admin: Account) -> None:
    host = await register(client, admin)
    dojo = await create_dojo(client, host)
    guest = await register(client, admin)
    await join(client, dojo, guest)
    await expect_error(await end(client, guest, dojo.session_id), 403, "not_host")
    await expect_error(await end(client, admin, dojo.session_id), 403, "not_host")
    assert (await status_of(client, admin, dojo.session_id))["status"] == "created"


async def test_end_summarizes_the_session(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest, watcher = await register(client, admin), await register(client, admin)
    await join(client, dojo, guest)
    await join(client, dojo, watcher, role="observer")
    await ok_json(await start(client, admin, dojo.session_id))
    body = await ok_json(await end(client, admin, dojo.session_id))
    assert body["success"] is True
    summary = body["sessionSummary"]
    assert set(summary) == {"duration", "participantCount", "recordingUrl"}
    assert summary["participantCount"] == 3
    assert summary["recordingUrl"] is None
    status = await status_of(client, admin, dojo.session_id)
    assert status["status"] == "ended"
    started = datetime.fromisoformat(status["startedAt"])
    ended = datetime.fromisoformat(status["endedAt"])
    assert ended >= started
    assert summary["duration"] == int((ended - started).total_seconds())


async def test_end_without_start_counts_from_creation(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    body = await ok_json(await end(client, admin, dojo.session_id))
    status = await status_of(client, admin, dojo.session_id)
    assert status["startedAt"] is None
    created = datetime.fromisoformat(status["createdAt"])
    ended = datetime.fromisoformat(status["endedAt"])
    assert body["sessionSummary"]["duration"] == int((ended - created).total_seconds())
    assert body["sessionSummary"]["participantCount"] == 1


async def test_end_with_someone_elses_host_user_id_is_403(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    other = await register(client, admin)
    resp = await end(client, admin, dojo.session_id, hostUserId=other.user_id)
    await expect_error(resp, 403, "user_mismatch")
    assert (await status_of(client, admin, dojo.session_id))["status"] == "created"


async def test_end_with_the_hosts_own_id_ends(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    await ok_json(await end(client, admin, dojo.session_id, hostUserId=admin.user_id))
    assert (await status_of(client, admin, dojo.session_id))["status"] == "ended"


@pytest.mark.parametrize(
    "headers", [{}, {"Content-Type": "application/json"}, {"Content-Type": "text/plain"}]
)
async def test_end_needs_no_body(client: Client, admin: Account, headers: dict[str, str]) -> None:
    dojo = await create_dojo(client, admin)
    resp = await client.post(url(dojo.session_id, "/end"), headers={**admin.auth, **headers})
    assert (await ok_json(resp))["success"] is True
    assert (await status_of(client, admin, dojo.session_id))["status"] == "ended"


async def test_end_with_a_body_that_is_not_json_is_still_415(
    client: Client, admin: Account
) -> None:
    dojo = await create_dojo(client, admin)
    resp = await client.post(
        url(dojo.session_id, "/end"),
        headers={**admin.auth, "Content-Type": "text/plain"},
        data=b"hostUserId=me",
    )
    await expect_error(resp, 415, "unsupported_media_type")
    assert (await status_of(client, admin, dojo.session_id))["status"] == "created"


async def test_ending_twice_is_409(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    await ok_json(await end(client, admin, dojo.session_id))
    await expect_error(await end(client, admin, dojo.session_id), 409, "session_ended")


async def test_start_after_end_is_409(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    await ok_json(await end(client, admin, dojo.session_id))
    await expect_error(await start(client, admin, dojo.session_id), 409, "session_ended")
    assert (await status_of(client, admin, dojo.session_id))["status"] == "ended"


async def test_start_and_end_of_another_tenants_session_are_404(
    client: Client, admin: Account
) -> None:
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    await expect_error(await start(client, admin, theirs.session_id), 404, "not_found")
    await expect_error(await end(client, admin, theirs.session_id), 404, "not_found")
    assert (await status_of(client, stranger, theirs.session_id))["status"] == "created"


# --- list ------------------------------------------------------------------------------------


async def list_sessions(client: Client, account: Account, **params: Any) -> dict[str, Any]:
    return await ok_json(await client.get(SESSIONS, headers=account.auth, params=params))


async def test_list_shows_the_tenants_open_sessions_only(client: Client, admin: Account) -> None:
    created = await create_dojo(client, admin, title="Waiting")
    active = await create_dojo(client, admin, title="Running")
    ended = await create_dojo(client, admin, title="Done")
    await ok_json(await start(client, admin, active.session_id))
    await ok_json(await end(client, admin, ended.session_id))
    stranger = await signup(client)
    await create_dojo(client, stranger, title="Elsewhere")
    viewer = await register(client, admin, role="viewer")
    listed = await list_sessions(client, viewer)
    assert listed["totalCount"] == 2
    by_id = {s["sessionId"]: s for s in listed["sessions"]}
    assert set(by_id) == {created.session_id, active.session_id}
    assert by_id[created.session_id]["status"] == "created"
    assert by_id[created.session_id]["title"] == "Waiting"
    assert by_id[active.session_id]["status"] == "active"
    assert by_id[active.session_id]["startedAt"] is not None
    assert by_id[created.session_id]["hostUserId"] == admin.user_id
    assert by_id[created.session_id]["maxParticipants"] == 10


async def test_list_is_paginated(client: Client, admin: Account) -> None:
    ids = {(await create_dojo(client, admin)).session_id for _ in range(3)}
    first = await list_sessions(client, admin, page=1, limit=2)
    second = await list_sessions(client, admin, page=2, limit=2)
    beyond = await list_sessions(client, admin, page=3, limit=2)
    assert (first["totalCount"], first["totalPages"], first["page"], first["limit"]) == (3, 2, 1, 2)
    assert len(first["sessions"]) == 2
    assert len(second["sessions"]) == 1
    seen = [s["sessionId"] for s in first["sessions"] + second["sessions"]]
    assert set(seen) == ids
    assert len(seen) == 3
    assert beyond["sessions"] == []
    assert beyond["totalCount"] == 3


async def test_list_puts_sooner_sessions_first(client: Client, admin: Account) -> None:
    later = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    sooner = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    far = await create_dojo(client, admin, scheduledAt=later)
    near = await create_dojo(client, admin, scheduledAt=sooner)
    now = await create_dojo(client, admin)
    listed = await list_sessions(client, admin)
    assert [s["sessionId"] for s in listed["sessions"]] == [
        now.session_id,
        near.session_id,
        far.session_id,
    ]


async def test_list_of_a_tenant_without_sessions_is_empty(client: Client, admin: Account) -> None:
    listed = await list_sessions(client, admin)
    assert (listed["sessions"], listed["totalCount"], listed["totalPages"]) == ([], 0, 0)


# --- chat history ----------------------------------------------------------------------------


async def send_chats(http: aiohttp.ClientSession, dojo: Dojo, token: str, texts: list[str]) -> None:
    """Send chat messages one at a time, each acknowledged by its broadcast."""
    ws = await http.ws_connect(dojo.events(token))
    await next_event(ws, "welcome")
    for text in texts:
        await ws.send_str(json.dumps({"type": "chat", "text": text}))
        event = await next_event(ws, "chat")
        assert event["text"] == text
    await ws.close()


async def test_chat_history_is_oldest_first_and_pages_back(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    texts = [f"m{i}" for i in range(5)]
    async with aiohttp.ClientSession() as http:
        await send_chats(http, dojo, dojo.host_token, texts)
    everything = await chat_page(client, admin, dojo.session_id)
    assert [m["text"] for m in everything] == texts
    newest = await chat_page(client, admin, dojo.session_id, limit=2)
    assert [m["text"] for m in newest] == ["m3", "m4"]
    older = await chat_page(client, admin, dojo.session_id, before=newest[0]["sentAt"], limit=2)
    assert [m["text"] for m in older] == ["m1", "m2"]
    oldest = await chat_page(client, admin, dojo.session_id, before=older[0]["sentAt"], limit=2)
    assert [m["text"] for m in oldest] == ["m0"]
    none = await chat_page(client, admin, dojo.session_id, before=oldest[0]["sentAt"])
    assert none == []


async def test_chat_messages_carry_the_sender(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        await send_chats(http, dojo, token, ["hello"])
    [message] = await chat_page(client, admin, dojo.session_id)
    assert set(message) == {"id", "userId", "username", "text", "sentAt"}
    uuid.UUID(message["id"])
    assert (message["userId"], message["username"], message["text"]) == (
        guest.user_id,
        guest.username,
        "hello",
    )
    assert datetime.fromisoformat(message["sentAt"]).tzinfo is not None


async def test_chat_history_is_for_participants_and_admins(client: Client, admin: Account) -> None:
    host = await register(client, admin)
    dojo = await create_dojo(client, host)
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    outsider = await register(client, admin)
    async with aiohttp.ClientSession() as http:
        await send_chats(http, dojo, token, ["hi"])
    for reader in (host, guest, admin):
        assert [m["text"] for m in await chat_page(client, reader, dojo.session_id)] == ["hi"]
    resp = await client.get(url(dojo.session_id, "/chat"), headers=outsider.auth)
    await expect_error(resp, 403, "not_participant")


async def test_chat_history_stays_readable_after_the_end(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin)
    async with aiohttp.ClientSession() as http:
        await send_chats(http, dojo, dojo.host_token, ["bye"])
    await ok_json(await end(client, admin, dojo.session_id))
    assert [m["text"] for m in await chat_page(client, admin, dojo.session_id)] == ["bye"]


async def test_chat_history_of_another_tenants_session_is_404(
    client: Client, admin: Account
) -> None:
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    resp = await client.get(url(theirs.session_id, "/chat"), headers=admin.auth)
    await expect_error(resp, 404, "not_found")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"before": "2024-01-01T00:00:00"},
        # Before year 1 or after 9999 once in UTC: Python's datetime (and asyncpg) cannot.
        {"before": "0001-01-01T00:00:00+14:00"},
        {"before": "9999-12-31T23:00:00-14:00"},
    ],
)
async def test_chat_history_refuses_bad_paging(
    client: Client, admin: Account, params: dict[str, str]
) -> None:
    dojo = await create_dojo(client, admin)
    resp = await client.get(url(dojo.session_id, "/chat"), headers=admin.auth, params=params)
    await expect_error(resp, 400, "invalid_query")


# --- snapshots -------------------------------------------------------------------------------


async def snapshots_of(client: Client, account: Account, session_id: str) -> list[dict[str, Any]]:
    resp = await client.get(url(session_id, "/snapshots"), headers=account.auth)
    found: list[dict[str, Any]] = (await ok_json(resp))["snapshots"]
    return found


async def test_the_last_snapshot_is_the_final_code(client: Client, admin: Account) -> None:
    dojo = await create_dojo(client, admin, initialCode="a\n")
    guest = await register(client, admin)
    token = await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        host_doc = await YClient.connect(http, dojo.doc(dojo.host_token))
        guest_doc = await YClient.connect(http, dojo.doc(token))
        await host_doc.wait_for(lambda: host_doc.code == "a\n")
        host_doc.text += "b\n"
        await guest_doc.wait_for(lambda: guest_doc.code == "a\nb\n")
        guest_doc.text += "c\n"
        # Seen by the other client, so the server has accepted both edits.
        await host_doc.wait_for(lambda: host_doc.code == "a\nb\nc\n")
        await guest_doc.close()
        await ok_json(await end(client, admin, dojo.session_id))
        assert await host_doc.wait_closed() is not None
    found = await snapshots_of(client, guest, dojo.session_id)
    assert found, found
    assert found[-1]["reason"] == "end"
    assert found[-1]["code"] == "a\nb\nc\n"
    assert set(found[-1]) == {"id", "takenAt", "reason", "code"}


async def test_ending_an_untouched_session_snapshots_the_initial_code(
    client: Client, admin: Account
) -> None:
    dojo = await create_dojo(client, admin, initialCode="print('hi')\n")
    assert await snapshots_of(client, admin, dojo.session_id) == []
    await ok_json(await end(client, admin, dojo.session_id))
    found = await snapshots_of(client, admin, dojo.session_id)
    assert [(s["reason"], s["code"]) for s in found] == [("end", "print('hi')\n")]


async def test_snapshots_are_for_participants_and_admins(client: Client, admin: Account) -> None:
    host = await register(client, admin)
    dojo = await create_dojo(client, host, initialCode="x")
    outsider = await register(client, admin)
    await ok_json(await end(client, host, dojo.session_id))
    assert len(await snapshots_of(client, admin, dojo.session_id)) == 1
    resp = await client.get(url(dojo.session_id, "/snapshots"), headers=outsider.auth)
    await expect_error(resp, 403, "not_participant")


async def test_snapshots_of_another_tenants_session_are_404(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    theirs = await create_dojo(client, stranger)
    resp = await client.get(url(theirs.session_id, "/snapshots"), headers=admin.auth)
    await expect_error(resp, 404, "not_found")
