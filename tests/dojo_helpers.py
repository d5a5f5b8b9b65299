"""Helpers for tests of dojo sessions and their sockets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp.test_utils import TestClient

from tests.helpers import Account

Client = TestClient[Any, Any]


@dataclass
class Dojo:
    session_id: str
    join_code: str
    doc_url: str
    events_url: str
    host_token: str

    def doc(self, token: str) -> str:
        return f"{self.doc_url}?token={token}"

    def events(self, token: str) -> str:
        return f"{self.events_url}?token={token}"


def on_node(client: Client, url: str) -> str:
    """The same socket URL on another in-process node (the test server of ``client``)."""
    return f"ws://{client.host}:{client.port}/v1/{url.split('/v1/', 1)[1]}"


async def create_poc(client: Client, account: Account, title: str = "Dojo POC") -> str:
    resp = await client.post(
        "/v1/pocs",
        headers=account.auth,
        json={
            "title": title,
            "description": "for a dojo",
            "language": "Python",
            "tags": ["dojo"],
            "userId": account.user_id,
            "tenantId": account.tenant_id,
        },
    )
    assert resp.status == 201, await resp.text()
    poc_id: str = (await resp.json())["pocId"]
    return poc_id


async def create_dojo(client: Client, host: Account, **fields: Any) -> Dojo:
    """Create a session hosted by ``host`` on a fresh POC."""
    poc_id = await create_poc(client, host)
    resp = await client.post(
        "/v1/dojos/sessions",
        headers=host.auth,
        json={"title": "Kata", "pocId": poc_id, **fields},
    )
    assert resp.status == 201, await resp.text()
    data = await resp.json()
    return Dojo(
        session_id=data["sessionId"],
        join_code=data["joinCode"],
        doc_url=data["docUrl"],
        events_url=data["eventsUrl"],
        host_token=data["participantToken"],
    )


async def join(client: Client, dojo: Dojo, account: Account, role: str = "participant") -> str:
    """Join ``dojo`` as ``account``; returns the participant token."""
    resp = await client.post(
        f"/v1/dojos/sessions/{dojo.session_id}/join",
        headers=account.auth,
        json={"joinCode": dojo.join_code, "role": role},
    )
    assert resp.status == 200, await resp.text()
    token: str = (await resp.json())["participantToken"]
    return token


async def corrupt_log(database_url: str, dojo: Dojo, tenant_id: str) -> None:
    """Append a row no Yjs document can read to ``dojo``'s update log, as a damaged disk or a
    faulty writer might: loading or compacting the document fails from then on."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO dojo_updates (session_id, tenant_id, data) VALUES ($1, $2, $3)",
            UUID(dojo.session_id),
            UUID(tenant_id),
            b"\x09 not a Yjs update",
        )
    finally:
        await conn.close()
