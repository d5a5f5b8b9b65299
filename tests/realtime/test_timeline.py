"""A recording's code timeline: stock y-websocket clients on two nodes type while two aiortc
participants speak; the code at any second of the recording (``code?at=``) is what had been
typed by then, the timeline a player scrubs rebuilds the same code, each edit is its
author's, and the rows are in PostgreSQL while the recording still runs."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pycrdt import Doc, Text

from pocdojo.core.colors import user_color
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.realtime.rooms import RoomSettings
from pocdojo.realtime.sockets import rooms_key
from tests.dojo_helpers import Dojo, create_dojo, join, on_node
from tests.helpers import Account, error_of, register, signup, wait_until
from tests.realtime.jsclient import JsClient, JsFactory, eventually, report_of, server_url_of
from tests.realtime.recorder_peers import Tone, answered, speaker
from tests.realtime.test_recording import Spoken, _mixed
from tests.yclient import YClient, next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]

pytestmark = pytest.mark.timeout(150)

MARGIN = 0.25  # seconds: the server's time of an edit lies between sending and being seen


def _path(dojo: Dojo, recording_id: str) -> str:
    return f"/v1/dojos/sessions/{dojo.session_id}/recordings/{recording_id}"


async def _code_at(client: Client, who: Account, dojo: Dojo, recording_id: str, at: float) -> str:
    resp = await client.get(
        f"{_path(dojo, recording_id)}/code", params={"at": str(at)}, headers=who.auth
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["at"] == pytest.approx(at)
    code: str = body["code"]
    return code


def _replayed(timeline: dict[str, Any], at: float) -> str:
    """What a player shows at ``at``: the base, then the steps up to it."""
    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    doc.apply_update(base64.b64decode(timeline["base"]))
    for step in timeline["steps"]:
        if step["t"] <= at:
            doc.apply_update(base64.b64decode(step["u"]))
    return str(text)


async def test_the_code_at_any_second_is_what_was_typed_by_then(
    make_client: MakeClient, node: JsFactory
) -> None:
    one = await make_client(worker=True)
    two = await make_client()
    host = await signup(one)
    dojo = await create_dojo(one, host, initialCode="# kata\n")
    speakers = [await register(one, host) for _ in range(2)]
    typist = await register(one, host)
    speaker_tokens = [await join(one, dojo, s) for s in speakers]
    typist_token = await join(one, dojo, typist)
    # The host types on the first node, the typist on the second.
    writers: list[JsClient] = [
        await node("host", dojo, dojo.host_token),
        await node("typist", dojo, typist_token, server_url=on_node(two, server_url_of(dojo))),
    ]
    report = report_of(*writers)
    await eventually(lambda: all(c.synced for c in writers), "sync", report=report)

    async with aiohttp.ClientSession() as http:
        voices = [
            await http.ws_connect(dojo.events(speaker_tokens[0])),
            await http.ws_connect(on_node(two, dojo.events(speaker_tokens[1]))),
        ]
        for ws in voices:
            await next_event(ws, "welcome")
        resp = await one.post(
            f"/v1/dojos/sessions/{dojo.session_id}/recording",
            headers=host.auth,
            json={"action": "start"},
        )
        assert resp.status == 200
        started_body = await resp.json()
        recording_id = started_body["recordingId"]
        started = datetime.fromisoformat(started_body["startedAt"]).timestamp()
        began = time.monotonic()
        tones = [Tone(440.0), Tone(1000.0)]
        pcs = []
        for ws, tone in zip(voices, tones, strict=True):
            pc = await speaker(ws, tone)
            await answered(ws, pc)
            pcs.append(pc)

        # Each edit: (text expected after it, server time just before sending, when seen).
        edits: list[tuple[str, float, float]] = []
        expected = "# kata\n"
        lines = ["def add(a, b):\n", "    return a + b\n", "assert add(1, 2) == 3\n"]
        for i, line in enumerate(lines):
            await asyncio.sleep(max(0.0, began + 0.8 * (i + 1) - time.monotonic()))  # pacing
            writer = writers[i % 2]
            sent = time.time()
            await writer.request("insert", index=len(expected), text=line)
            expected += line
            await eventually(
                lambda expected=expected: all(c.text == expected for c in writers),  # type: ignore[misc]
                f"edit {i} everywhere",
                report=report,
            )
            edits.append((expected, sent - started, time.time() - started))

        # While it still records, the timeline is already stored.
        pool = one.app[rooms_key].pool

        async def stored_steps() -> bool:
            async with tenant_tx(pool, UUID(host.tenant_id)) as conn:
                recording = await recordings_db.get(conn, UUID(dojo.session_id), UUID(recording_id))
                assert recording is not None
                rows = await recordings_db.timeline_rows(conn, recording)
            return sum(not state for _, _, state, _ in rows) >= len(lines)

        await wait_until(stored_steps, within=10)
        live = await _code_at(one, typist, dojo, recording_id, 3600)
        assert live == expected

        await asyncio.sleep(max(0.0, began + 3.2 - time.monotonic()))  # the voices go on
        for pc in pcs:
            await pc.close()
        sent_audio = max(t.last or 0 for t in tones) - began
        resp = await one.post(
            f"/v1/dojos/sessions/{dojo.session_id}/recording",
            headers=host.auth,
            json={"action": "stop"},
        )
        assert resp.status == 200
        spoken = Spoken(host, dojo, speakers, tones, UUID(recording_id), voices, sent_audio)
        await _mixed(one, spoken, [440.0, 1000.0])

        before = "# kata\n"
        assert await _code_at(one, host, dojo, recording_id, 0) == before
        for text, sent, seen in edits:
            assert await _code_at(one, host, dojo, recording_id, max(0, sent - MARGIN)) == before
            assert await _code_at(two, typist, dojo, recording_id, seen + MARGIN) == text
            before = text

        timeline = await (
            await one.get(f"{_path(dojo, recording_id)}/timeline", headers=typist.auth)
        ).json()
        assert timeline["status"] == "ready"
        assert timeline["recordingId"] == recording_id
        assert timeline["duration"] == pytest.approx(sent_audio, rel=0.1)
        assert timeline["audio"]["ogg"]
        assert timeline["audio"]["m4a"]
        assert [s["t"] for s in timeline["steps"]] == sorted(s["t"] for s in timeline["steps"])
        assert _replayed(timeline, 0) == "# kata\n"
        for text, _sent, seen in edits:
            assert _replayed(timeline, seen + MARGIN) == text
        authors = {a["userId"]: a for a in timeline["authors"]}
        assert set(authors) == {host.user_id, typist.user_id}
        assert authors[typist.user_id]["username"] == typist.username
        assert authors[host.user_id]["color"] == user_color(host.user_id)
        # Each line is its writer's: the step that brought it names them.
        for i, line in enumerate(lines):
            by = [host.user_id, typist.user_id][i % 2]
            step = next(s for s in timeline["steps"] if line in _replayed_upto(timeline, s))
            assert timeline["authors"][step["a"]]["userId"] == by, (line, step)
        for ws in voices:
            await ws.close()
    assert all(c.close_codes == [] for c in writers), report()


def _replayed_upto(timeline: dict[str, Any], last: dict[str, Any]) -> str:
    """The code once the steps up to ``last`` (included, in order) are applied."""
    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    doc.apply_update(base64.b64decode(timeline["base"]))
    for step in timeline["steps"]:
        doc.apply_update(base64.b64decode(step["u"]))
        if step is last:
            break
    return str(text)


async def test_a_room_nobody_held_at_the_start_begins_with_its_stored_code(
    client: Client, node: JsFactory
) -> None:
    host = await signup(client)
    dojo = await create_dojo(client, host, initialCode="seed\n")
    resp = await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/recording",
        headers=host.auth,
        json={"action": "start"},
    )
    recording_id = (await resp.json())["recordingId"]
    started = datetime.fromisoformat((await resp.json())["startedAt"]).timestamp()
    late = await node("late", dojo, dojo.host_token)  # loads the room during the recording
    await eventually(lambda: late.synced and late.text == "seed\n", "sync", report=late.report)
    await late.request("insert", index=5, text="more\n")
    typed = time.time() - started
    await wait_until(
        lambda: _code_is(client, host, dojo, recording_id, 3600, "seed\nmore\n"), within=10
    )
    await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/recording",
        headers=host.auth,
        json={"action": "stop"},
    )
    assert await _code_at(client, host, dojo, recording_id, 0) == "seed\n"
    assert await _code_at(client, host, dojo, recording_id, typed + 1) == "seed\nmore\n"


async def _code_is(
    client: Client, who: Account, dojo: Dojo, recording_id: str, at: float, code: str
) -> bool:
    return await _code_at(client, who, dojo, recording_id, at) == code


async def test_code_and_timeline_refuse_bad_input_and_strangers(client: Client) -> None:
    host = await signup(client)
    dojo = await create_dojo(client, host)
    resp = await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/recording",
        headers=host.auth,
        json={"action": "start"},
    )
    recording_id = (await resp.json())["recordingId"]
    path = _path(dojo, recording_id)
    for bad in ("-1", "abc", "nan", "inf", "", "1e400"):
        resp = await client.get(f"{path}/code", params={"at": bad}, headers=host.auth)
        assert resp.status == 400, bad
        assert (await error_of(resp))["code"] == "invalid_query", bad
    resp = await client.get(f"{path}/code", headers=host.auth)
    assert resp.status == 400  # ``at`` is required

    outsider = await register(client, host)  # same tenant, not in the session
    for suffix in ("/code?at=1", "/timeline"):
        resp = await client.get(path + suffix, headers=outsider.auth)
        assert resp.status == 403, suffix
    stranger = await signup(client)  # another tenant
    for suffix in ("/code?at=1", "/timeline"):
        resp = await client.get(path + suffix, headers=stranger.auth)
        assert resp.status == 404, suffix
    unknown = _path(dojo, "00000000-0000-4000-8000-000000000000")
    resp = await client.get(f"{unknown}/timeline", headers=host.auth)
    assert resp.status == 404
    resp = await client.get(f"{path}/timeline", headers=host.auth)
    body = await resp.json()
    assert body["status"] == "recording"
    assert body["duration"] is None


async def test_what_a_dead_node_accepted_during_a_recording_is_in_its_timeline(
    make_client: MakeClient,
) -> None:
    """The node holding the writer never flushes (as if killed): the node holding the
    listener stores the writer's updates, into the timeline too, at the time they arrived."""
    dead = await make_client(dojo_persist_interval=3600.0, dojo_idle_unload=3600.0)
    alive = await make_client()
    host = await signup(alive)
    dojo = await create_dojo(alive, host, initialCode="")
    guest = await join(alive, dojo, await register(alive, host))
    async with aiohttp.ClientSession() as http:
        writer = await YClient.connect(http, on_node(dead, dojo.doc(dojo.host_token)))
        listener = await YClient.connect(http, on_node(alive, dojo.doc(guest)))
        await writer.synced.wait()
        await listener.synced.wait()
        resp = await alive.post(
            f"/v1/dojos/sessions/{dojo.session_id}/recording",
            headers=host.auth,
            json={"action": "start"},
        )
        body = await resp.json()
        recording_id, started = body["recordingId"], datetime.fromisoformat(body["startedAt"])
        await wait_until(lambda: _both_know(dead, alive), within=5)
        writer.text += "before;"
        await listener.wait_for(lambda: listener.code == "before;")
        between = time.time() - started.timestamp()
        writer.text += "after;"
        await listener.wait_for(lambda: listener.code == "before;after;")
        await wait_until(
            lambda: _code_is(alive, host, dojo, recording_id, 3600, "before;after;"),
            within=RoomSettings().store_grace + RoomSettings().persist_interval + 2,
        )
        assert await _code_at(alive, host, dojo, recording_id, 0) == ""
        assert await _code_at(alive, host, dojo, recording_id, between) == "before;"
        await writer.close()
        await listener.close()


async def _both_know(*nodes: Client) -> bool:
    """Every node's room has heard that the recording started."""
    return all(
        all(room.recording is not None for room in n.app[rooms_key].rooms.values()) for n in nodes
    )
