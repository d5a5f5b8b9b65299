"""Favorites: adding, listing with POC details, removing, and exact counts under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from tests.conftest import Engines
from tests.helpers import Account, register, signup
from tests.poc_helpers import (
    Client,
    add_favorite,
    create_poc,
    db_poc,
    delete_poc,
    expect_error,
    get_ok,
    owner_fetchrow,
    read_poc,
)


async def post_favorite(client: Client, account: Account, poc_id: str, user_id: str = "") -> Any:
    return await client.post(
        "/v1/favorites",
        headers=account.auth,
        json={"pocId": poc_id, "userId": user_id or account.user_id},
    )


async def list_favorites(
    client: Client, reader: Account, user_id: str, **params: int
) -> dict[str, Any]:
    return await get_ok(client, reader, f"/v1/favorites/user/{user_id}", params or None)


async def stored_counts(engines: Engines, poc_id: str) -> tuple[int, int]:
    """The POC's favorite counter and how many favorite rows name it."""
    row = await owner_fetchrow(
        engines.database_url,
        "SELECT p.favorite_count, (SELECT count(*) FROM favorites f WHERE f.poc_id = p.id) AS n "
        "FROM pocs p WHERE p.id = $1::uuid",
        poc_id,
    )
    return row["favorite_count"], row["n"]


async def test_add_favorite(client: Client, admin: Account, engines: Engines) -> None:
    poc = await create_poc(client, admin)
    user = await register(client, admin)
    resp = await post_favorite(client, user, poc["pocId"])
    assert resp.status == 201, await resp.text()
    favorite = await resp.json()
    assert set(favorite) == {"favoriteId", "pocId", "userId", "createdAt"}
    uuid.UUID(favorite["favoriteId"])
    assert (favorite["pocId"], favorite["userId"]) == (poc["pocId"], user.user_id)
    datetime.fromisoformat(favorite["createdAt"])
    assert await stored_counts(engines, poc["pocId"]) == (1, 1)


async def test_viewer_can_favorite(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    viewer = await register(client, admin, role="viewer")
    await add_favorite(client, viewer, poc["pocId"])
    assert (await read_poc(client, viewer, poc["pocId"]))["metrics"]["favorites"] == 1


async def test_same_poc_twice_is_409(client: Client, admin: Account, engines: Engines) -> None:
    poc = await create_poc(client, admin)
    await add_favorite(client, admin, poc["pocId"])
    await expect_error(await post_favorite(client, admin, poc["pocId"]), 409, "already_favorite")
    assert await stored_counts(engines, poc["pocId"]) == (1, 1)


async def test_poc_of_another_tenant_is_404(
    client: Client, admin: Account, engines: Engines
) -> None:
    stranger = await signup(client)
    theirs = await create_poc(client, stranger)
    await expect_error(await post_favorite(client, admin, theirs["pocId"]), 404, "not_found")
    await expect_error(await post_favorite(client, admin, str(uuid.uuid4())), 404, "not_found")
    assert await stored_counts(engines, theirs["pocId"]) == (0, 0)


async def test_deleted_poc_is_404(client: Client, admin: Account, engines: Engines) -> None:
    poc = await create_poc(client, admin)
    await delete_poc(client, admin, poc["pocId"])
    await expect_error(await post_favorite(client, admin, poc["pocId"]), 404, "not_found")
    assert await stored_counts(engines, poc["pocId"]) == (0, 0)


async def test_userid_of_someone_else_is_403(
    client: Client, admin: Account, engines: Engines
) -> None:
    poc = await create_poc(client, admin)
    user = await register(client, admin)
    # Not even an admin may favorite on another user's behalf.
    for caller, target in ((user, admin), (admin, user)):
        resp = await post_favorite(client, caller, poc["pocId"], target.user_id)
        await expect_error(resp, 403, "user_mismatch")
    assert await stored_counts(engines, poc["pocId"]) == (0, 0)


async def test_add_with_a_bad_body_is_422(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    for body in (
        {"pocId": poc["pocId"]},
        {"userId": admin.user_id},
        {"pocId": "nope", "userId": admin.user_id},
        {"pocId": poc["pocId"], "userId": admin.user_id, "extra": 1},
    ):
        resp = await client.post("/v1/favorites", headers=admin.auth, json=body)
        await expect_error(resp, 422, "validation_failed")


# --- listing ---------------------------------------------------------------------------------


async def test_list_has_poc_details_newest_first(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    first = await create_poc(client, admin, title="First", language="go", tags=["A", "b"])
    second = await create_poc(client, admin, title="Second", language="rust", tags=["c"])
    added = [await add_favorite(client, user, p["pocId"]) for p in (first, second)]
    listed = await list_favorites(client, user, user.user_id)
    assert (listed["totalCount"], listed["page"], listed["limit"], listed["totalPages"]) == (
        2,
        1,
        20,
        1,
    )
    assert listed["favorites"] == [
        {
            "favoriteId": added[1]["favoriteId"],
            "pocId": second["pocId"],
            "pocTitle": "Second",
            "language": "Rust",
            "tags": ["c"],
            "addedAt": added[1]["createdAt"],
        },
        {
            "favoriteId": added[0]["favoriteId"],
            "pocId": first["pocId"],
            "pocTitle": "First",
            "language": "Go",
            "tags": ["a", "b"],
            "addedAt": added[0]["createdAt"],
        },
    ]


async def test_list_shows_current_poc_details(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin, title="Before")
    await add_favorite(client, admin, poc["pocId"])
    resp = await client.put(
        f"/v1/pocs/{poc['pocId']}", headers=admin.auth, json={"title": "After", "tags": ["z"]}
    )
    assert resp.status == 200, await resp.text()
    (entry,) = (await list_favorites(client, admin, admin.user_id))["favorites"]
    assert (entry["pocTitle"], entry["tags"]) == ("After", ["z"])


async def test_list_pages(client: Client, admin: Account) -> None:
    pocs = [await create_poc(client, admin) for _ in range(3)]
    favs = [(await add_favorite(client, admin, p["pocId"]))["favoriteId"] for p in pocs]
    pages = [await list_favorites(client, admin, admin.user_id, limit=2, page=n) for n in (1, 2)]
    assert [[f["favoriteId"] for f in p["favorites"]] for p in pages] == [
        [favs[2], favs[1]],
        [favs[0]],
    ]
    assert {(p["totalCount"], p["totalPages"]) for p in pages} == {(3, 2)}


async def test_deleted_pocs_favorite_leaves_the_list(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    kept = await create_poc(client, admin)
    gone = await create_poc(client, admin)
    for poc in (kept, gone):
        await add_favorite(client, user, poc["pocId"])
    await delete_poc(client, admin, gone["pocId"])
    listed = await list_favorites(client, user, user.user_id)
    assert [f["pocId"] for f in listed["favorites"]] == [kept["pocId"]]
    assert (listed["totalCount"], listed["totalPages"]) == (1, 1)


async def test_listing_someone_elses_favorites(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    owner = await register(client, admin)
    await add_favorite(client, owner, poc["pocId"])
    for role in ("user", "viewer"):
        other = await register(client, admin, role=role)
        resp = await client.get(f"/v1/favorites/user/{owner.user_id}", headers=other.auth)
        await expect_error(resp, 403, "forbidden")
    listed = await list_favorites(client, admin, owner.user_id)
    assert [f["pocId"] for f in listed["favorites"]] == [poc["pocId"]]


async def test_admin_cannot_list_another_tenants_favorites(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    theirs = await create_poc(client, stranger)
    await add_favorite(client, stranger, theirs["pocId"])
    resp = await client.get(f"/v1/favorites/user/{stranger.user_id}", headers=admin.auth)
    if resp.status == 200:
        assert (await resp.json())["favorites"] == []
    else:
        await expect_error(resp, 404, "not_found")


# --- removing --------------------------------------------------------------------------------


async def test_remove_own_favorite(client: Client, admin: Account, engines: Engines) -> None:
    poc = await create_poc(client, admin)
    user = await register(client, admin)
    favorite = await add_favorite(client, user, poc["pocId"])
    assert (await read_poc(client, admin, poc["pocId"]))["metrics"]["favorites"] == 1
    resp = await client.delete(f"/v1/favorites/{favorite['favoriteId']}", headers=user.auth)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["success"] is True
    assert await stored_counts(engines, poc["pocId"]) == (0, 0)
    assert (await read_poc(client, admin, poc["pocId"]))["metrics"]["favorites"] == 0
    assert (await list_favorites(client, user, user.user_id))["favorites"] == []
    # Removed, it can be added again.
    await add_favorite(client, user, poc["pocId"])
    assert await stored_counts(engines, poc["pocId"]) == (1, 1)


async def test_removing_someone_elses_favorite_is_403(
    client: Client, admin: Account, engines: Engines
) -> None:
    poc = await create_poc(client, admin)
    owner = await register(client, admin)
    favorite = await add_favorite(client, owner, poc["pocId"])
    for other in (await register(client, admin), admin):
        resp = await client.delete(f"/v1/favorites/{favorite['favoriteId']}", headers=other.auth)
        await expect_error(resp, 403, "forbidden")
    assert await stored_counts(engines, poc["pocId"]) == (1, 1)


async def test_removing_unknown_favorite_is_404(client: Client, admin: Account) -> None:
    for favorite_id in (str(uuid.uuid4()), "nope"):
        resp = await client.delete(f"/v1/favorites/{favorite_id}", headers=admin.auth)
        await expect_error(resp, 404, "not_found")


async def test_removing_another_tenants_favorite_is_404(
    client: Client, admin: Account, engines: Engines
) -> None:
    stranger = await signup(client)
    theirs = await create_poc(client, stranger)
    favorite = await add_favorite(client, stranger, theirs["pocId"])
    resp = await client.delete(f"/v1/favorites/{favorite['favoriteId']}", headers=admin.auth)
    await expect_error(resp, 404, "not_found")
    assert await stored_counts(engines, theirs["pocId"]) == (1, 1)


async def test_removing_twice_is_404_the_second_time(
    client: Client, admin: Account, engines: Engines
) -> None:
    poc = await create_poc(client, admin)
    favorite = await add_favorite(client, admin, poc["pocId"])
    path = f"/v1/favorites/{favorite['favoriteId']}"
    assert (await client.delete(path, headers=admin.auth)).status == 200
    await expect_error(await client.delete(path, headers=admin.auth), 404, "not_found")
    assert await stored_counts(engines, poc["pocId"]) == (0, 0)


# --- concurrency -----------------------------------------------------------------------------


async def test_favorite_count_is_exact_under_concurrency(
    client: Client, admin: Account, engines: Engines
) -> None:
    poc = await create_poc(client, admin)
    poc_id = poc["pocId"]
    assert (await read_poc(client, admin, poc_id))["metrics"]["favorites"] == 0  # now cached
    fans = list(await asyncio.gather(*(register(client, admin) for _ in range(10))))

    resps = await asyncio.gather(*(post_favorite(client, fan, poc_id) for fan in fans))
    assert [r.status for r in resps] == [201] * 10
    favorites = [await r.json() for r in resps]
    assert (await read_poc(client, admin, poc_id))["metrics"]["favorites"] == 10
    assert await stored_counts(engines, poc_id) == (10, 10)

    # Four distinct removals, one of them sent twice at once, plus a duplicate add at once.
    paths = [f"/v1/favorites/{f['favoriteId']}" for f in favorites[:4]]
    removals = [client.delete(p, headers=fan.auth) for p, fan in zip(paths, fans, strict=False)]
    removals.append(client.delete(paths[0], headers=fans[0].auth))
    again = [post_favorite(client, fans[9], poc_id) for _ in range(2)]
    resps = await asyncio.gather(*removals, *again)
    assert sorted(r.status for r in resps[:5]) == [200, 200, 200, 200, 404]
    assert [r.status for r in resps[5:]] == [409, 409]
    assert await stored_counts(engines, poc_id) == (6, 6)
    assert (await read_poc(client, admin, poc_id))["metrics"]["favorites"] == 6
    row = await db_poc(engines.database_url, poc_id)
    assert row["favorite_count"] == 6


async def test_concurrent_duplicate_adds_count_once(
    client: Client, admin: Account, engines: Engines
) -> None:
    poc = await create_poc(client, admin)
    user = await register(client, admin)
    resps = await asyncio.gather(*(post_favorite(client, user, poc["pocId"]) for _ in range(5)))
    assert sorted(r.status for r in resps) == [201, 409, 409, 409, 409]
    assert await stored_counts(engines, poc["pocId"]) == (1, 1)
    assert (await read_poc(client, user, poc["pocId"]))["metrics"]["favorites"] == 1
