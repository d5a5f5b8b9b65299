"""Replay videos over REST: who may ask for one and when, and a recorded dojo (a real aiortc
participant speaking, two Yjs clients typing) rendered by the worker, fetched through its
signed links and decoded with PyAV."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from PIL import Image

from pocdojo.core.colors import user_color
from pocdojo.media.video.paint import hex_color
from tests.conftest import Engines
from tests.dojo_helpers import Dojo, create_dojo, join
from tests.helpers import Account, error_of, register, signup
from tests.jobs.job_helpers import Client, fetch_link, wait_status
from tests.poc_helpers import owner_execute
from tests.realtime.recorder_peers import Tone, answered, speaker
from tests.yclient import YClient, next_event

MakeClient = Callable[..., Awaitable[Client]]
NO_SUCH_RECORDING = "00000000-0000-4000-8000-000000000000"


def _recording_path(dojo: Dojo, recording_id: str) -> str:
    return f"/v1/dojos/sessions/{dojo.session_id}/recordings/{recording_id}"


async def _ask(client: Client, who: Account, dojo: Dojo, recording_id: str) -> Any:
    return await client.post(f"{_recording_path(dojo, recording_id)}/video", headers=who.auth)


async def _record(client: Client, host: Account, dojo: Dojo, action: str) -> dict[str, Any]:
    resp = await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/recording",
        headers=host.auth,
        json={"action": action},
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _mixed_without_worker(engines: Engines, recording_id: str) -> None:
    """Mark a stopped recording mixed, as the recording job would (no voice is needed to
    decide who may ask for its video)."""
    await owner_execute(
        engines.database_url,
        "UPDATE dojo_recordings SET status = 'ready', ogg_key = 'none.ogg', duration = 3 "
        "WHERE id = $1::uuid",
        recording_id,
    )


async def test_only_a_ready_recording_gets_a_video(client: Client, engines: Engines) -> None:
    host = await signup(client)
    dojo = await create_dojo(client, host)
    recording_id = (await _record(client, host, dojo, "start"))["recordingId"]
    resp = await _ask(client, host, dojo, recording_id)
    assert resp.status == 409
    error = await error_of(resp)
    assert error["code"] == "recording_not_ready"
    assert "recording" in error["message"]
    await _record(client, host, dojo, "stop")
    resp = await _ask(client, host, dojo, recording_id)
    assert resp.status == 409  # processing: its voice is not mixed yet
    assert "processing" in (await error_of(resp))["message"]

    await _mixed_without_worker(engines, recording_id)
    resp = await _ask(client, host, dojo, recording_id)
    assert resp.status == 202, await resp.text()
    accepted = await resp.json()
    assert accepted["status"] == "queued"
    assert accepted["estimatedDuration"] > 0
    status = await (
        await client.get(f"/v1/videos/{accepted['videoId']}/status", headers=host.auth)
    ).json()
    assert status["recordingId"] == recording_id
    assert status["year"] is None
    assert status["template"] is None
    assert status["downloadUrl"] is None
    listed = await (await client.get("/v1/videos", headers=host.auth)).json()
    assert [v["videoId"] for v in listed["videos"]] == [accepted["videoId"]]


async def test_participants_only_and_other_tenants_see_nothing(
    client: Client, engines: Engines
) -> None:
    host = await signup(client)
    dojo = await create_dojo(client, host)
    member = await register(client, host)
    watcher = await register(client, host)
    outsider = await register(client, host)
    viewer = await register(client, host, role="viewer")
    await join(client, dojo, member)
    await join(client, dojo, watcher, role="observer")
    recording_id = (await _record(client, host, dojo, "start"))["recordingId"]
    await _record(client, host, dojo, "stop")
    await _mixed_without_worker(engines, recording_id)

    resp = await _ask(client, outsider, dojo, recording_id)
    assert resp.status == 403
    assert (await error_of(resp))["code"] == "not_participant"
    resp = await _ask(client, viewer, dojo, recording_id)
    assert resp.status == 403
    resp = await _ask(client, member, dojo, NO_SUCH_RECORDING)
    assert resp.status == 404
    other = await create_dojo(client, host)  # a recording is asked for through its session
    resp = await _ask(client, host, other, recording_id)
    assert resp.status == 404

    stranger = await signup(client)  # an admin, of another tenant
    resp = await _ask(client, stranger, dojo, recording_id)
    assert resp.status == 404
    assert (await error_of(resp))["code"] == "not_found"

    for who in (member, watcher, host):
        resp = await _ask(client, who, dojo, recording_id)
        assert resp.status == 202, await resp.text()
    video_id = (await resp.json())["videoId"]  # the host's
    for who, expected in ((host, 200), (member, 404), (stranger, 404)):
        resp = await client.get(f"/v1/videos/{video_id}/status", headers=who.auth)
        assert resp.status == expected


def _colored_pixels(image: Image.Image, color: tuple[int, int, int]) -> int:
    """How many pixels of ``image`` are (nearly) ``color``."""
    pixels = np.asarray(image).astype(np.int16)
    return int((np.abs(pixels - np.array(color)).max(axis=2) <= 24).sum())


async def _typed(doc: YClient, other: YClient, text: str) -> None:
    doc.text += text
    expected = doc.code
    await other.wait_for(lambda: other.code == expected)


@pytest.mark.timeout(180)
async def test_a_recorded_dojo_is_rendered_with_its_code_and_voice(
    make_client: MakeClient,
) -> None:
    client = await make_client(worker=True)
    host = await signup(client)
    dojo = await create_dojo(client, host, title="Adding kata", language="Python")
    guest = await register(client, host)
    token = await join(client, dojo, guest)
    async with aiohttp.ClientSession() as http:
        events = await http.ws_connect(dojo.events(token))
        await next_event(events, "welcome")
        host_doc = await YClient.connect(http, dojo.doc(dojo.host_token))
        guest_doc = await YClient.connect(http, dojo.doc(token))
        for doc in (host_doc, guest_doc):
            await asyncio.wait_for(doc.synced.wait(), 10)

        recording_id = (await _record(client, host, dojo, "start"))["recordingId"]
        tone = Tone(440.0)
        pc = await speaker(events, tone)
        await answered(events, pc)
        began = time.monotonic()
        await _typed(host_doc, guest_doc, "def add(a, b):\n")
        await asyncio.sleep(max(0.0, began + 1.2 - time.monotonic()))
        await _typed(guest_doc, host_doc, "    return a + b\n")
        await asyncio.sleep(max(0.0, began + 2.4 - time.monotonic()))
        await _typed(host_doc, guest_doc, "\nassert add(1, 2) == 3\n")
        await asyncio.sleep(max(0.0, began + 4.0 - time.monotonic()))
        await pc.close()
        await _record(client, host, dojo, "stop")
        recording = await wait_status(
            client, host, _recording_path(dojo, recording_id), until=("ready", "failed"), within=60
        )
        assert recording["status"] == "ready", recording

        resp = await _ask(client, guest, dojo, recording_id)
        assert resp.status == 202, await resp.text()
        video_id = (await resp.json())["videoId"]
        status = await wait_status(client, guest, f"/v1/videos/{video_id}/status", within=120)
        assert status["status"] == "completed", status
        assert status["progress"] == 100
        assert status["recordingId"] == recording_id
        assert status["duration"] == pytest.approx(recording["duration"], rel=0.1)
        for doc in (host_doc, guest_doc):
            await doc.close()
        await events.close()

    code, headers, data = await fetch_link(client, status["downloadUrl"])
    assert code == 200
    assert headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(data), mode="r") as container:
        [picture] = container.streams.video
        [sound] = container.streams.audio
        assert picture.codec_context.name == "h264"
        assert (picture.width, picture.height) == (1280, 720)
        assert sound.codec_context.name == "aac"
        assert container.duration is not None
        seconds = container.duration / av.time_base
        assert seconds == pytest.approx(recording["duration"], rel=0.1)
        frames = [f.to_image() for f in container.decode(picture)]  # type: ignore[no-untyped-call]
    first, last = frames[0], frames[-1]
    # The host's and the guest's characters are underlined in their colours by the end.
    for who in (host, guest):
        color = hex_color(user_color(who.user_id))
        assert _colored_pixels(first.crop((0, 110, 1280, 720)), color) == 0
        assert _colored_pixels(last.crop((0, 110, 1280, 720)), color) > 100, who.username
    code, _, thumb = await fetch_link(client, status["thumbnailUrl"])
    assert code == 200
    assert Image.open(io.BytesIO(thumb)).format == "JPEG"
