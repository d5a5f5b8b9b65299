"""Yearly videos over REST: validation, access, and a video rendered by the worker, fetched
through its signed links and decoded with PyAV."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import av
import pytest
from PIL import Image

from pocdojo.jobs import videos as videos_job
from pocdojo.rest import videos as videos_rest
from tests.conftest import Engines
from tests.helpers import Account, error_of, register, signup
from tests.jobs.job_helpers import Client, date_poc, fetch_link, wait_status
from tests.poc_helpers import create_poc, owner_execute

MakeClient = Callable[..., Awaitable[Client]]
THIS_YEAR = datetime.now(UTC).year


def video_body(account: Account, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "userId": account.user_id,
        "year": THIS_YEAR,
        "includeMetrics": True,
        "template": "default",
        "tenantId": account.tenant_id,
    }
    body.update(overrides)
    return body


async def request_video(client: Client, account: Account, **overrides: Any) -> Any:
    return await client.post(
        "/v1/videos/generate-yearly", headers=account.auth, json=video_body(account, **overrides)
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"year": 2019}, "year"),
        ({"year": THIS_YEAR + 1}, "year"),
        ({"year": "2024"}, "year"),
        ({"template": "sparkles"}, "template"),
        ({"userId": None}, "userId"),
        ({"includeMetrics": "yes"}, "includeMetrics"),
    ],
)
async def test_generate_refuses_bad_input(
    client: Client, admin: Account, change: dict[str, Any], field: str
) -> None:
    await create_poc(client, admin)
    body = {k: v for k, v in video_body(admin, **change).items() if v is not None}
    resp = await client.post("/v1/videos/generate-yearly", headers=admin.auth, json=body)
    assert resp.status == 422, await resp.text()
    assert field in json.dumps((await error_of(resp))["details"])


async def test_a_year_without_pocs_is_refused(
    client: Client, admin: Account, engines: Engines
) -> None:
    poc = await create_poc(client, admin)
    await date_poc(engines.database_url, poc["pocId"], datetime(2021, 5, 1, tzinfo=UTC))
    resp = await request_video(client, admin)
    assert resp.status == 422
    assert (await error_of(resp))["code"] == "no_pocs_in_year"
    resp = await request_video(client, admin, year=2021)
    assert resp.status == 202


async def test_deleted_pocs_do_not_count(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    resp = await client.delete(f"/v1/pocs/{poc['pocId']}", headers=admin.auth)
    assert resp.status in (200, 204)
    resp = await request_video(client, admin)
    assert resp.status == 422


async def test_only_admins_ask_for_someone_else(client: Client, admin: Account) -> None:
    user = await register(client, admin, role="user")
    viewer = await register(client, admin, role="viewer")
    await create_poc(client, user)
    resp = await request_video(client, user, userId=admin.user_id)
    assert resp.status == 403
    assert (await error_of(resp))["code"] == "user_mismatch"
    resp = await request_video(client, viewer, userId=viewer.user_id)
    assert resp.status == 403
    resp = await request_video(client, admin, userId=user.user_id)
    assert resp.status == 202, await resp.text()
    video_id = (await resp.json())["videoId"]
    # The video is the user's: theirs to list, the admin's to look at, no one else's.
    listed = await (await client.get("/v1/videos", headers=user.auth)).json()
    assert [v["videoId"] for v in listed["videos"]] == [video_id]
    for who, expected in ((user, 200), (admin, 200), (viewer, 404)):
        resp = await client.get(f"/v1/videos/{video_id}/status", headers=who.auth)
        assert resp.status == expected


async def test_other_tenants_see_nothing(client: Client, admin: Account) -> None:
    await create_poc(client, admin)
    resp = await request_video(client, admin)
    video_id = (await resp.json())["videoId"]
    stranger = await signup(client)
    await create_poc(client, stranger)
    resp = await client.get(f"/v1/videos/{video_id}/status", headers=stranger.auth)
    assert resp.status == 404
    resp = await request_video(client, stranger, userId=admin.user_id)
    assert resp.status == 404  # an admin, but of another tenant: no such user there
    resp = await request_video(client, admin, tenantId=stranger.tenant_id)
    assert resp.status == 403


@pytest.mark.timeout(120)
async def test_video_is_rendered_and_decodes(make_client: MakeClient) -> None:
    client = await make_client(worker=True)
    admin = await signup(client)
    for i, language in enumerate(("Python", "Rust", "TypeScript")):
        await create_poc(client, admin, title=f"Card {i} — 東京", language=language)
    resp = await request_video(client, admin, template="default")
    assert resp.status == 202, await resp.text()
    accepted = await resp.json()
    assert accepted["status"] == "queued"
    assert accepted["estimatedDuration"] > 0
    status = await wait_status(
        client, admin, f"/v1/videos/{accepted['videoId']}/status", within=100
    )
    assert status["status"] == "completed", status
    assert status["pocCount"] == 3
    assert status["progress"] == 100

    code, headers, data = await fetch_link(client, status["downloadUrl"])
    assert code == 200
    assert headers["Content-Type"] == "video/mp4"
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (1280, 720)
        assert stream.average_rate == 30
        frames = len(list(container.decode(stream)))
    assert abs(frames / 30 - status["duration"]) <= 1 / 30 + 1e-6

    code, headers, thumb = await fetch_link(client, status["thumbnailUrl"])
    assert code == 200
    image = Image.open(io.BytesIO(thumb))
    assert image.format == "JPEG"

    resp = await client.get(f"/v1/tenants/{admin.tenant_id}", headers=admin.auth)
    assert (await resp.json())["usage"]["storageUsed"] == len(data) + len(thumb)


@pytest.mark.timeout(90)
async def test_a_busy_year_shows_its_most_popular_pocs(
    make_client: MakeClient, engines: Engines, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(videos_job, "MAX_CARDS", 2)
    monkeypatch.setattr(videos_rest, "MAX_CARDS", 2)
    client = await make_client(worker=True)
    admin = await signup(client)
    for views in (5, 50, 0, 20):
        poc = await create_poc(client, admin, title=f"Viewed {views}")
        await owner_execute(
            engines.database_url,
            "UPDATE pocs SET view_count = $2 WHERE id = $1::uuid",
            poc["pocId"],
            views,
        )
    resp = await request_video(client, admin)
    accepted = await resp.json()
    assert "2 most popular of 4" in accepted["message"]
    status = await wait_status(client, admin, f"/v1/videos/{accepted['videoId']}/status")
    assert status["status"] == "completed", status
    assert status["pocCount"] == 2
