"""Helpers for the job tests: waiting on a job's status, following its links, dating POCs."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from tests.helpers import Account
from tests.poc_helpers import owner_execute

Client = TestClient[Any, Any]
FINISHED = ("completed", "sent", "failed")  # "sent": a notification's "completed"


async def wait_status(
    client: Client,
    account: Account,
    path: str,
    until: tuple[str, ...] = FINISHED,
    within: float = 45.0,
) -> dict[str, Any]:
    """Poll a job's status endpoint until its status is one of ``until``; returns the body.

    Raises:
        TimeoutError: the job did not get there within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        resp = await client.get(path, headers=account.auth)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        if body["status"] in until:
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} still {body['status']} ({body.get('progress')}%)")
        await asyncio.sleep(0.1)


async def fetch_link(client: Client, url: str) -> tuple[int, dict[str, str], bytes]:
    """GET a signed link through the test client (the link names the configured public URL,
    not the test server's port, so only its path and query are used)."""
    parts = urlsplit(url)
    resp = await client.get(f"{parts.path}?{parts.query}")
    return resp.status, dict(resp.headers), await resp.read()


async def date_poc(database_url: str, poc_id: str, when: datetime) -> None:
    """Move a POC's creation time (the API always stamps now)."""
    await owner_execute(
        database_url, "UPDATE pocs SET created_at = $2 WHERE id = $1::uuid", poc_id, when
    )
