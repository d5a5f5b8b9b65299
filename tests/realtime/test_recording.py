"""Recording a dojo's voice: the host starts and stops it (events socket or REST), and the
participants in voice send their microphones to the server's recorder peer (real aiortc peers
on loopback, signaled through their events sockets), which writes one part per participant
and uploads it when the recording stops."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from pocdojo.core import appkeys
from pocdojo.core.db import recordings as recordings_db
from pocdojo.core.db import tenant_tx
from pocdojo.realtime import sockets
from tests.dojo_helpers import Dojo, create_dojo, join, on_node
from tests.helpers import Account, error_of, register, signup, wait_until
from tests.jobs.job_helpers import fetch_link, wait_status
from tests.realtime.recorder_peers import Tone, answered, decode, peaks, signal, speaker
from tests.yclient import next_event

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
WS = aiohttp.ClientWebSocketResponse

pytestmark = pytest.mark.timeout(120)


async def _recording(client: Client, dojo: Dojo, who: Account, action: str) -> Any:
    return await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/recording", headers=who.auth, json={"action": action}
    )


async def _dojo_with_guest(client: Client) -> tuple[Account, Dojo, Account, str]:
    """A fresh dojo, its host, and a participant who joined it (with its token)."""
    host = await signup(client)
    dojo = await create_dojo(client, host)
    guest = await register(client, host)
    return host, dojo, guest, await join(client, dojo, guest)


async def test_host_starts_and_stops_from_socket_or_rest(client: Client) -> None:
    host, dojo, guest, guest_token = await _dojo_with_guest(client)
    async with aiohttp.ClientSession() as http:
        hws = await http.ws_connect(dojo.events(dojo.host_token))
        assert (await next_event(hws, "welcome"))["recording"] is None
        gws = await http.ws_connect(dojo.events(guest_token))
        await next_event(gws, "welcome")

        resp = await _recording(client, dojo, host, "start")
        assert resp.status == 200, await resp.text()
        started = await resp.json()
        assert started["status"] == "recording"
        assert started["oggUrl"] is None
        event = await next_event(gws, "recording")
        assert event["state"] == "started"
        assert event["recordingId"] == started["recordingId"]
        assert event["by"] == host.user_id

        again = await _recording(client, dojo, host, "start")
        assert again.status == 409
        assert (await error_of(again))["code"] == "recording_running"
        await hws.send_str(json.dumps({"type": "recording", "action": "start"}))
        assert (await next_event(hws, "error"))["code"] == "recording_running"
        refused = await _recording(client, dojo, guest, "stop")
        assert refused.status == 403
        await gws.send_str(json.dumps({"type": "recording", "action": "stop"}))
        assert (await next_event(gws, "error"))["code"] == "forbidden"

        late = await http.ws_connect(dojo.events(guest_token))  # knows to send its audio
        assert (await next_event(late, "welcome"))["recording"] == event

        await hws.send_str(json.dumps({"type": "recording", "action": "stop"}))
        stopped = await next_event(gws, "recording")
        assert stopped["state"] == "stopped"
        assert stopped["recordingId"] == started["recordingId"]
        none = await _recording(client, dojo, host, "stop")
        assert none.status == 409
        assert (await error_of(none))["code"] == "not_recording"

        listed = await client.get(
            f"/v1/dojos/sessions/{dojo.session_id}/recordings", headers=guest.auth
        )
        assert listed.status == 200
        [one] = (await listed.json())["recordings"]
        assert one["recordingId"] == started["recordingId"]
        assert one["status"] == "processing"
        got = await client.get(
            f"/v1/dojos/sessions/{dojo.session_id}/recordings/{one['recordingId']}",
            headers=guest.auth,
        )
        assert (await got.json())["stoppedAt"] == one["stoppedAt"]
        for ws in (hws, gws, late):
            await ws.close()


@dataclass
class Spoken:
    """A recorded dojo after two participants sent tones, the second through ``second``."""

    host: Account
    dojo: Dojo
    guests: list[Account]
    tones: list[Tone]
    recording_id: UUID
    sockets: list[WS]
    sent: float  # from the start of the recording to the last audio sent


async def _two_speak(client: Client, second: Client, http: aiohttp.ClientSession) -> Spoken:
    host = await signup(client)
    dojo = await create_dojo(client, host)
    guests = [await register(client, host) for _ in range(2)]
    tokens = [await join(client, dojo, g) for g in guests]
    tones = [Tone(440.0), Tone(1000.0)]
    urls = [dojo.events(tokens[0]), on_node(second, dojo.events(tokens[1]))]
    sockets = [await http.ws_connect(url) for url in urls]
    for ws in sockets:
        await next_event(ws, "welcome")
    resp = await _recording(client, dojo, host, "start")
    started = time.monotonic()
    recording_id = UUID((await resp.json())["recordingId"])
    pcs = []
    for ws, tone in zip(sockets, tones, strict=True):
        pc = await speaker(ws, tone)
        await answered(ws, pc)
        pcs.append(pc)
    await asyncio.sleep(3.0)
    for pc in pcs:
        await pc.close()
    sent = max(t.last or 0 for t in tones) - started
    return Spoken(host, dojo, guests, tones, recording_id, sockets, sent)


async def _mixed(client: Client, spoken: Spoken, tones: list[float]) -> dict[str, Any]:
    """The recording once mixed, checked: as long as the recording carried audio, ``tones``
    in its spectrum, in both formats."""
    path = f"/v1/dojos/sessions/{spoken.dojo.session_id}/recordings/{spoken.recording_id}"
    body = await wait_status(client, spoken.host, path, until=("ready", "failed"), within=60)
    assert body["status"] == "ready", body
    assert body["progress"] == 100
    assert abs(body["duration"] - spoken.sent) <= 0.1 * spoken.sent
    for link in (body["oggUrl"], body["m4aUrl"]):
        status, _, data = await fetch_link(client, link)
        assert status == 200
        samples, rate = decode(data)
        assert abs(len(samples) / rate - spoken.sent) <= 0.1 * spoken.sent
        assert min(peaks(samples, rate, tones)) > 0.2
    return body


@pytest.mark.parametrize("nodes", [1, 2])
async def test_recorder_writes_each_participants_audio_and_the_job_mixes_them(
    make_client: MakeClient, nodes: int
) -> None:
    """Two participants send tones; with two nodes, the second one's events socket is on the
    node that neither starts nor stops the recording, and hears the stop through the bus."""
    client = await make_client(worker=True)
    second = await make_client() if nodes == 2 else client
    async with aiohttp.ClientSession() as http:
        spoken = await _two_speak(client, second, http)
        host, dojo, guests = spoken.host, spoken.dojo, spoken.guests
        # While it still records, what came is counted already (sampled as it comes).
        live = await _received(client, second)
        assert live["pocdojo_recorder_packets_received_total"] >= 2 * 50  # 2 s, 50/s
        assert live.get("pocdojo_recorder_stream_loss_ratio_count", 0) == 0  # at the close
        resp = await _recording(client, dojo, host, "stop")
        assert resp.status == 200

        pool, store = client.app[appkeys.db_pool_key], client.app[appkeys.object_store_key]

        async def parts() -> list[recordings_db.Part]:
            async with tenant_tx(pool, UUID(host.tenant_id)) as conn:
                return await recordings_db.parts(conn, spoken.recording_id)

        await wait_until(lambda: _uploaded(parts, 2), within=30)
        found = {p.user_id: p for p in await parts()}
        for guest, tone in zip(guests, spoken.tones, strict=True):
            part = found[UUID(guest.user_id)]
            assert part.start_offset is not None
            assert 0 <= part.start_offset < 5
            samples, rate = decode(await store.get(part.object_key))
            assert abs(len(samples) / rate - tone.sent) <= 0.1 * tone.sent
            mine, other = peaks(samples, rate, [tone.frequency, 1440 - tone.frequency])
            assert mine == 1.0
            assert other < 0.05

        received = await _received(client, second)
        assert received["pocdojo_recorder_stream_loss_ratio_count"] == 2  # one per part
        assert received["pocdojo_recorder_stream_jitter_seconds_count"] == 2
        assert received["pocdojo_recorder_packets_received_total"] >= 2 * 100  # 3 s, 50/s
        assert "pocdojo_recorder_packets_lost_total" in received

        body = await _mixed(client, spoken, [440.0, 1000.0])
        assert sorted(body["participants"]) == sorted(g.user_id for g in guests)
        session = await (
            await client.get(f"/v1/dojos/sessions/{dojo.session_id}", headers=host.auth)
        ).json()
        assert session["recordingUrl"] is not None
        for ws in spoken.sockets:
            await ws.close()


async def test_a_node_that_died_leaves_its_part_to_its_next_run(make_client: MakeClient) -> None:
    """The second node stops without uploading (as if killed): the mix is made without its
    participant once the bounded wait passes, and again with them when the node runs again
    and uploads what it had written."""
    client = await make_client(worker=True, recording_upload_wait=2.0)
    doomed = await make_client()
    async with aiohttp.ClientSession() as http:
        spoken = await _two_speak(client, doomed, http)
        recorders = doomed.app[sockets.rooms_key].recorders
        assert recorders is not None
        await recorders.close()  # its peers end; what they wrote stays on its disk
        await _recording(client, spoken.dojo, spoken.host, "stop")
        first = await _mixed(client, spoken, [440.0])
        assert first["participants"] == [spoken.guests[0].user_id]

        await make_client()  # the node runs again, on the same data directory
        path = f"/v1/dojos/sessions/{spoken.dojo.session_id}/recordings/{spoken.recording_id}"

        async def mixed_again() -> bool:
            body = await (await client.get(path, headers=spoken.host.auth)).json()
            return body["status"] == "ready" and len(body["participants"]) == 2

        await wait_until(mixed_again, within=60)
        again = await _mixed(client, spoken, [440.0, 1000.0])
        assert sorted(again["participants"]) == sorted(g.user_id for g in spoken.guests)
        for ws in spoken.sockets:
            await ws.close()


async def _received(*nodes: Client) -> dict[str, float]:
    """The recorder's receiver statistics from the nodes' ``/metrics``, summed."""
    found: dict[str, float] = {}
    for node in set(nodes):
        text = await (await node.get("/metrics")).text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("pocdojo_recorder_") and not sample.labels:
                    found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


async def _uploaded(parts: Callable[[], Awaitable[list[Any]]], n: int) -> bool:
    return sum(p.bytes is not None for p in await parts()) >= n


async def test_recorder_refuses_what_it_cannot_take(client: Client) -> None:
    host, dojo, _guest, token = await _dojo_with_guest(client)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(dojo.events(token))
        await next_event(ws, "welcome")
        pc = await speaker(ws, Tone(440.0))  # no recording runs
        assert (await next_event(ws, "error"))["code"] == "not_recording"
        await pc.close()

        await _recording(client, dojo, host, "start")
        await ws.send_str(json.dumps({"type": "voice", "inVoice": False}))
        await next_event(ws, "voice")
        await signal(ws, "offer", {"sdp": "v=0\r\n", "type": "offer"})
        assert (await next_event(ws, "error"))["code"] == "not_in_voice"

        video = await speaker(ws, None, video_only=True)
        assert (await next_event(ws, "error"))["code"] == "no_audio"
        await video.close()
        for garbage in ({"sdp": "garbage", "type": "offer"}, "text", {"type": "offer"}):
            await signal(ws, "offer", garbage)
            assert (await next_event(ws, "error"))["code"] == "invalid_sdp"
        await signal(ws, "candidate", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"})
        assert (await next_event(ws, "error"))["code"] == "no_recorder_peer"
        await signal(ws, "answer", {"sdp": "v=0", "type": "answer"})
        assert (await next_event(ws, "error"))["code"] == "invalid_signal"

        await _recording(client, dojo, host, "stop")
        await next_event(ws, "recording")
        async with tenant_tx(client.app[appkeys.db_pool_key], UUID(host.tenant_id)) as conn:
            [recording] = await recordings_db.of_session(conn, UUID(dojo.session_id))
            assert await recordings_db.parts(conn, recording.id) == []
        await ws.close()


async def test_ending_the_session_stops_its_recording(client: Client) -> None:
    host, dojo, guest, token = await _dojo_with_guest(client)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(dojo.events(token))
        await next_event(ws, "welcome")
        started = await (await _recording(client, dojo, host, "start")).json()
        await next_event(ws, "recording")
        ended = await client.post(f"/v1/dojos/sessions/{dojo.session_id}/end", headers=host.auth)
        assert ended.status == 200
        stopped = await next_event(ws, "recording")
        assert stopped["state"] == "stopped"
        assert stopped["recordingId"] == started["recordingId"]
        path = f"/v1/dojos/sessions/{dojo.session_id}/recordings/{started['recordingId']}"
        got = await (await client.get(path, headers=guest.auth)).json()
        assert got["status"] == "processing"
        await ws.close()
