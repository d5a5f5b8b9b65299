"""Stored dojo documents: compaction keeps what waits for a dependency, and deletes exactly the
log rows it folded, whatever other nodes append meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from aiohttp.test_utils import TestClient
from pycrdt import Doc, Map, Text

from pocdojo.core import appkeys
from pocdojo.core.db import dojos as dojos_db
from pocdojo.core.db import tenant_tx
from pocdojo.crdt import document
from tests.dojo_helpers import create_dojo
from tests.helpers import Account
from tests.yclient import typed

Client = TestClient[Any, Any]


def test_an_update_past_a_missing_one_is_held_and_encoded() -> None:
    u1, u2, u3 = typed("aaa", "bbb", "ccc")
    doc = document.Document()
    doc.apply(u1)
    doc.apply(u3)  # its dependency (u2) is missing
    assert doc.held is not None
    # A receiver syncing now gets u3 too, and completes it when u2 arrives.
    receiver = document.doc_from(None, [doc.encode()])
    receiver.apply(u2)
    assert receiver.code() == "aaabbbccc"
    # Once the dependency arrives, nothing is held any more.
    doc.apply(u2)
    assert doc.held is None
    assert doc.code() == "aaabbbccc"


def test_a_deletion_of_unknown_items_is_held() -> None:
    doc: Doc[Any] = Doc(client_id=9)
    text = doc.get(document.CODE, type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text += "hello"
    del text[0:2]
    insert, deletion = updates
    held = document.Document()
    held.apply(deletion)
    assert held.held is not None
    held.apply(insert)
    assert held.held is None
    assert held.code() == "llo"


def test_types_are_counted_once_whether_held_sent_again_or_loaded() -> None:
    doc: Doc[Any] = Doc(client_id=9)
    meta = doc.get("meta", type=Map)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    meta["a"] = Map({"b": Map()})  # two types
    meta["c"] = Map()  # one more, after them
    second = updates[1]
    counted = document.Document()
    assert counted.count_types() == 0
    counted.admit(second)
    counted.apply(second)  # waits for the first: held, and counted
    assert counted.held is not None
    assert counted.types == 1
    counted.apply(second)
    assert counted.types == 1
    counted.apply(doc.get_update())  # the whole state: only the first update's types are new
    assert counted.held is None
    assert counted.types == 3
    assert document.doc_from(counted.encode(), []).count_types() == 3


def test_an_update_already_applied_holds_nothing() -> None:
    (u1,) = typed("x")
    doc = document.Document()
    doc.apply(u1)
    doc.apply(u1)
    assert doc.held is None


async def _session(client: Client, admin: Account) -> tuple[Any, UUID, UUID]:
    dojo = await create_dojo(client, admin, initialCode="")
    assert client.app is not None
    return client.app[appkeys.db_pool_key], UUID(admin.tenant_id), UUID(dojo.session_id)


async def test_compaction_keeps_an_update_whose_dependency_is_not_stored_yet(
    client: Client, admin: Account
) -> None:
    pool, tenant, session = await _session(client, admin)
    u1, u2, u3 = typed("aaa", "bbb", "ccc")
    await document.append(pool, tenant, session, [u1, u3])
    assert await document.compact(pool, tenant, session, None) == 2
    # The dependency is stored later (another node's write): nothing was dropped meanwhile.
    await document.append(pool, tenant, session, [u2])
    assert (await document.load(pool, tenant, session)).code() == "aaabbbccc"


async def test_compaction_keeps_a_live_documents_held_update(
    client: Client, admin: Account
) -> None:
    pool, tenant, session = await _session(client, admin)
    u1, u2, u3 = typed("aaa", "bbb", "ccc")
    live = document.Document()
    live.apply(u1)
    live.apply(u3)
    await document.compact(pool, tenant, session, live)
    await document.append(pool, tenant, session, [u2])
    assert (await document.load(pool, tenant, session)).code() == "aaabbbccc"


async def test_a_row_committed_after_compaction_read_the_log_is_neither_deleted_nor_skipped(
    client: Client, admin: Account
) -> None:
    pool, tenant, session = await _session(client, admin)
    first, late, last = typed("one;", "two;", "three;")
    await document.append(pool, tenant, session, [first])
    inserted = asyncio.Event()
    release = asyncio.Event()

    async def slow_append() -> None:
        # Another node's flush: its row is numbered now but commits only later.
        async with tenant_tx(pool, tenant) as conn:
            await dojos_db.append_updates(conn, session, tenant, [late])
            inserted.set()
            await release.wait()

    writer = asyncio.create_task(slow_append())
    await inserted.wait()
    await document.append(pool, tenant, session, [last])  # numbered after, committed first
    await document.compact(pool, tenant, session, None)
    release.set()
    await writer
    async with tenant_tx(pool, tenant) as conn:
        stored = await dojos_db.load_doc(conn, session)
    assert len(stored.updates) == 1, "the late row must stay in the log, unfolded"
    assert (await document.load(pool, tenant, session)).code() == "one;two;three;"
    await document.compact(pool, tenant, session, None)
    assert (await document.load(pool, tenant, session)).code() == "one;two;three;"
