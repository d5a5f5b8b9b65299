"""Reports over REST: validation, access, and a report of every format built by the worker,
downloaded through its signed link and opened with a real reader."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiohttp
import openpyxl
import pytest
from pypdf import PdfReader

from pocdojo.core import appkeys
from pocdojo.core.objectstore.filesystem import FilesystemStore
from pocdojo.core.objectstore.s3 import S3Store
from pocdojo.core.s3server import SeaweedS3
from tests.conftest import Engines
from tests.helpers import Account, error_of, register, signup
from tests.jobs.job_helpers import Client, date_poc, fetch_link, wait_status
from tests.poc_helpers import create_poc

MakeClient = Callable[..., Awaitable[Client]]
TODAY = datetime.now(UTC).date()


def report_body(account: Account, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reportType": "summary",
        "dateRange": {
            "startDate": str(TODAY - timedelta(days=90)),
            "endDate": str(TODAY),
        },
        "tenantId": account.tenant_id,
        "format": "json",
    }
    body.update(overrides)
    return body


async def generate(client: Client, account: Account, **overrides: Any) -> dict[str, Any]:
    resp = await client.post(
        "/v1/reports/generate", headers=account.auth, json=report_body(account, **overrides)
    )
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reportType": "weekly"}, "reportType"),
        ({"reportType": None}, "reportType"),
        ({"format": "docx"}, "format"),
        ({"dateRange": {"startDate": "2025-01-01", "endDate": "2026-01-01"}}, "dateRange"),
        ({"dateRange": {"startDate": "2025-03-01", "endDate": "2025-02-28"}}, "dateRange"),
        ({"dateRange": {"startDate": "2025-02-30", "endDate": "2025-03-01"}}, "startDate"),
        ({"dateRange": {"startDate": "2025-01-01"}}, "endDate"),
        ({"filters": {"language": "Klingon"}}, "language"),
        ({"filters": {"tags": [f"t{i}" for i in range(21)]}}, "tags"),
        ({"filters": {"userId": "not-a-uuid"}}, "userId"),
        ({"filters": {"owner": "x"}}, "owner"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_generate_refuses_bad_input(
    client: Client, admin: Account, change: dict[str, Any], field: str
) -> None:
    body = report_body(admin)
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    resp = await client.post("/v1/reports/generate", headers=admin.auth, json=body)
    assert resp.status == 422, await resp.text()
    error = await error_of(resp)
    assert field in json.dumps(error["details"])


async def test_a_full_year_is_allowed_even_from_29_february(client: Client, admin: Account) -> None:
    for start, end in (("2024-02-29", "2025-02-27"), ("2025-01-01", "2025-12-31")):
        await generate(client, admin, dateRange={"startDate": start, "endDate": end})


async def test_generate_refuses_another_tenant_id(client: Client, admin: Account) -> None:
    other = await signup(client)
    resp = await client.post(
        "/v1/reports/generate",
        headers=admin.auth,
        json=report_body(admin, tenantId=other.tenant_id),
    )
    assert resp.status == 403
    assert (await error_of(resp))["code"] == "tenant_mismatch"


async def test_generate_needs_a_token(client: Client, admin: Account) -> None:
    resp = await client.post("/v1/reports/generate", json=report_body(admin))
    assert resp.status == 401


async def test_status_is_visible_to_requester_and_admin_only(
    client: Client, admin: Account
) -> None:
    alice = await register(client, admin, role="user")
    bob = await register(client, admin, role="user")
    accepted = await generate(client, alice)
    assert accepted["status"] == "queued"
    assert accepted["estimatedTime"] > 0
    path = f"/v1/reports/{accepted['reportId']}/status"
    for who, expected in ((alice, 200), (admin, 200), (bob, 404)):
        resp = await client.get(path, headers=who.auth)
        assert resp.status == expected, (who.username, await resp.text())
    stranger = await signup(client)
    for suffix in ("status", "download"):
        resp = await client.get(
            f"/v1/reports/{accepted['reportId']}/{suffix}", headers=stranger.auth
        )
        assert resp.status == 404
    resp = await client.get("/v1/reports/not-a-uuid/status", headers=alice.auth)
    assert resp.status == 404


async def test_download_before_completion_is_a_conflict(client: Client, admin: Account) -> None:
    accepted = await generate(client, admin)  # no worker runs in this app
    resp = await client.get(
        f"/v1/reports/{accepted['reportId']}/download", headers=admin.auth, allow_redirects=False
    )
    assert resp.status == 409
    assert (await error_of(resp))["code"] == "not_ready"


async def test_list_mine_pages_newest_first(client: Client, admin: Account) -> None:
    other = await register(client, admin, role="user")
    made = [(await generate(client, admin))["reportId"] for _ in range(3)]
    await generate(client, other)
    resp = await client.get("/v1/reports?limit=2", headers=admin.auth)
    assert resp.status == 200
    page = await resp.json()
    assert page["totalCount"] == 3
    assert page["totalPages"] == 2
    assert [r["reportId"] for r in page["reports"]] == made[::-1][:2]
    resp = await client.get("/v1/reports?limit=2&page=2", headers=admin.auth)
    assert [r["reportId"] for r in (await resp.json())["reports"]] == made[:1]
    resp = await client.get("/v1/reports?limit=0", headers=admin.auth)
    assert resp.status == 400


async def _seed(
    client: Client, engines: Engines, owner: Account, other: Account
) -> list[dict[str, Any]]:
    """POCs spread over three months and two owners, one deleted, one outside the range."""
    seeded: list[dict[str, Any]] = []
    plan = [
        (owner, "Python", ["web", "api"], 10),
        (owner, "Go", ["cli"], 40),
        (other, "Python", ["web"], 40),
        (other, "Rust", ["=cmd", "web"], 70),
        (owner, "Python", ["ml"], 400),  # outside the range
    ]
    for who, language, tags, days_ago in plan:
        poc = await create_poc(
            client, who, language=language, tags=tags, title=f"Ünïcode {days_ago}"
        )
        await date_poc(
            engines.database_url, poc["pocId"], datetime.now(UTC) - timedelta(days=days_ago)
        )
        seeded.append({"poc": poc, "language": language, "tags": tags, "days_ago": days_ago})
    gone = await create_poc(client, owner, language="Java", tags=["gone"])
    resp = await client.delete(f"/v1/pocs/{gone['pocId']}", headers=owner.auth)
    assert resp.status in (200, 204)
    return [s for s in seeded if s["days_ago"] <= 90]


@pytest.mark.timeout(120)
async def test_every_format_is_built_downloaded_and_readable(
    make_client: MakeClient, engines: Engines
) -> None:
    client = await make_client(worker=True)
    admin = await signup(client)
    other = await register(client, admin, role="user")
    expected = await _seed(client, engines, admin, other)
    languages = Counter(s["language"] for s in expected)

    bodies: dict[str, bytes] = {}
    for fmt in ("json", "csv", "xlsx", "pdf"):
        accepted = await generate(client, admin, format=fmt, reportType="detailed")
        status = await wait_status(client, admin, f"/v1/reports/{accepted['reportId']}/status")
        assert status["status"] == "completed", status
        assert status["progress"] == 100
        assert status["pocCount"] == len(expected)
        assert status["completedAt"] is not None
        code, headers, data = await fetch_link(client, status["downloadUrl"])
        assert code == 200
        assert status["sizeBytes"] == len(data)
        assert f".{fmt}" in headers["Content-Disposition"]
        bodies[fmt] = data
        resp = await client.get(
            f"/v1/reports/{accepted['reportId']}/download",
            headers=admin.auth,
            allow_redirects=False,
        )
        assert resp.status == 302
        code, _, again = await fetch_link(client, resp.headers["Location"])
        assert (code, again) == (200, data)

    doc = json.loads(bodies["json"])
    text = json.dumps(doc, ensure_ascii=False)
    for s in expected:
        assert s["poc"]["title"] in text
    assert "Ünïcode 400" not in text  # outside the date range
    assert "gone" not in {t for s in expected for t in s["tags"]}
    assert '"gone"' not in text

    rows = list(csv.reader(io.StringIO(bodies["csv"].decode("utf-8-sig"))))
    flat = [cell for row in rows for cell in row]
    assert "'=cmd" in " ".join(flat)  # formula injection defused
    assert not any(cell.startswith("=") for cell in flat)

    book = openpyxl.load_workbook(io.BytesIO(bodies["xlsx"]), read_only=True)
    assert len(book.sheetnames) >= 2
    numbers = [
        cell
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for cell in row
        if isinstance(cell, int)
    ]
    assert len(expected) in numbers
    for count in languages.values():
        assert count in numbers

    pdf = PdfReader(io.BytesIO(bodies["pdf"]))
    assert len(pdf.pages) >= 2
    pdf_text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "detailed" in pdf_text.lower()
    assert str(TODAY - timedelta(days=90)) in pdf_text or "Acme" in pdf_text


@pytest.mark.timeout(90)
async def test_filters_narrow_the_report(make_client: MakeClient, engines: Engines) -> None:
    client = await make_client(worker=True)
    admin = await signup(client)
    other = await register(client, admin, role="user")
    expected = await _seed(client, engines, admin, other)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"language": "python"}, sum(s["language"] == "Python" for s in expected)),
        ({"tags": ["WEB", "cli"]}, sum(bool({"web", "cli"} & set(s["tags"])) for s in expected)),
        ({"userId": other.user_id}, 2),
    ]
    for filters, count in cases:
        accepted = await generate(client, admin, filters=filters)
        status = await wait_status(client, admin, f"/v1/reports/{accepted['reportId']}/status")
        assert status["status"] == "completed", status
        assert status["pocCount"] == count, filters


@pytest.mark.timeout(60)
async def test_an_empty_period_still_gives_a_report(make_client: MakeClient) -> None:
    client = await make_client(worker=True)
    admin = await signup(client)
    accepted = await generate(
        client, admin, format="pdf", dateRange={"startDate": "2021-01-01", "endDate": "2021-06-30"}
    )
    status = await wait_status(client, admin, f"/v1/reports/{accepted['reportId']}/status")
    assert status["status"] == "completed"
    assert status["pocCount"] == 0
    code, _, data = await fetch_link(client, status["downloadUrl"])
    assert code == 200
    assert len(PdfReader(io.BytesIO(data)).pages) >= 1


@pytest.mark.timeout(90)
async def test_links_are_refused_when_tampered_expired_or_moved(make_client: MakeClient) -> None:
    client = await make_client(worker=True)
    urls: list[str] = []
    for _ in range(2):  # two tenants, one report each
        account = await signup(client)
        accepted = await generate(client, account)
        status = await wait_status(client, account, f"/v1/reports/{accepted['reportId']}/status")
        assert status["status"] == "completed"
        urls.append(status["downloadUrl"])
    mine, theirs = (urlsplit(u) for u in urls)
    assert (await fetch_link(client, urls[0]))[0] == 200
    params = dict(parse_qsl(mine.query))

    async def refused(path: str, query: dict[str, str]) -> str:
        resp = await client.get(path, params=query)
        assert resp.status == 403, (path, query)
        return str((await error_of(resp))["code"])

    forged = params["sig"][:-1] + ("0" if params["sig"][-1] != "0" else "1")
    assert await refused(mine.path, {**params, "sig": forged}) == "invalid_signature"
    assert await refused(mine.path, {**params, "expires": str(int(params["expires"]) + 3600)})
    assert await refused(mine.path, {**params, "filename": "other.json"})
    # Another tenant's file under this link's signature.
    assert await refused(theirs.path, params) == "invalid_signature"
    # A link signed correctly but already expired.
    store = client.app[appkeys.object_store_key]
    assert isinstance(store, FilesystemStore)
    key = mine.path.removeprefix("/v1/files/")
    past = int(time.time()) - 5
    expired = {**params, "expires": str(past)}
    expired["sig"] = store._sign(unquote(key), past, params.get("filename"), params.get("type"))
    assert await refused(mine.path, expired) == "link_expired"


@pytest.mark.timeout(90)
async def test_reports_go_to_s3_and_download_through_presigned_urls(
    make_client: MakeClient, seaweed_env: SeaweedS3
) -> None:
    seaweed = seaweed_env
    bucket = f"reports-{uuid.uuid4().hex[:12]}"
    await S3Store(bucket).ensure_bucket()
    client = await make_client(worker=True, object_store_url=f"s3://{bucket}/pocdojo")
    admin = await signup(client)
    await create_poc(client, admin, title="Stored in S3")
    accepted = await generate(client, admin, format="json", reportType="detailed")
    status = await wait_status(client, admin, f"/v1/reports/{accepted['reportId']}/status")
    assert status["status"] == "completed", status
    url = status["downloadUrl"]
    assert url.startswith(seaweed.endpoint_url)
    assert f"/pocdojo/tenants/{admin.tenant_id}/users/{admin.user_id}/reports/" in url
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert resp.status == 200
            assert "attachment" in resp.headers["Content-Disposition"]
            body = await resp.read()
        async with http.get(url.replace("Signature=", "Signature=0")) as resp:
            assert resp.status == 403
    assert "Stored in S3" in body.decode()
    # The server's own file route serves nothing with an S3 store.
    code, _, _ = await fetch_link(client, f"/v1/files/{urlsplit(url).path}?expires=1&sig=x")
    assert code == 404
