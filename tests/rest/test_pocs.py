"""POCs: registration and its rules, reads that count views, changes, soft deletion, lists."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import Engines
from tests.helpers import Account, register, signup, unique
from tests.poc_helpers import (
    Client,
    add_favorite,
    create_poc,
    db_poc,
    delete_poc,
    expect_error,
    get_ok,
    ids,
    poc_body,
    popular_tags,
    read_poc,
    search,
    suggest,
    titles,
    update_poc,
)

POC_FIELDS = {
    "pocId",
    "title",
    "description",
    "language",
    "tags",
    "repositoryUrl",
    "documentation",
    "userId",
    "tenantId",
    "status",
    "createdAt",
    "updatedAt",
    "metrics",
}


async def expect_rejected(resp: Any, field: str) -> None:
    """Assert a 422 whose details name ``field`` (or a path inside it)."""
    error = await expect_error(resp, 422, "validation_failed")
    assert any(
        d["field"] == field or d["field"].startswith(f"{field}.") for d in error["details"]
    ), error["details"]


# --- registration ----------------------------------------------------------------------------


async def test_create_returns_the_poc_with_canonical_language(
    client: Client, admin: Account
) -> None:
    body = poc_body(
        admin,
        title="  Redis streams catch-up  ",
        description="Consumers catch up after downtime",
        language="tYpEsCrIpT",
        tags=["redis"],
        repositoryUrl="https://git.example/acme/streams",
        documentation="# Streams\nReplay entries.",
    )
    resp = await client.post("/v1/pocs", headers=admin.auth, json=body)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert set(created) == POC_FIELDS
    assert created["title"] == "Redis streams catch-up"
    assert created["language"] == "TypeScript"
    assert created["description"] == "Consumers catch up after downtime"
    assert created["repositoryUrl"] == "https://git.example/acme/streams"
    assert created["documentation"] == "# Streams\nReplay entries."
    assert created["userId"] == admin.user_id
    assert created["tenantId"] == admin.tenant_id
    assert created["status"] == "active"
    assert created["metrics"] == {"views": 0, "favorites": 0}
    uuid.UUID(created["pocId"])
    # The stored POC is the one answered.
    stored = await read_poc(client, admin, created["pocId"])
    assert {k: v for k, v in stored.items() if k != "metrics"} == {
        k: v for k, v in created.items() if k != "metrics"
    }


async def test_every_listed_language_is_accepted_in_any_case(
    client: Client, admin: Account
) -> None:
    resp = await client.get("/v1/languages")
    assert resp.status == 200
    languages: list[str] = (await resp.json())["languages"]
    assert {"Python", "C++", "JavaScript", "Go"} <= set(languages)
    assert len(set(languages)) == len(languages)
    for name in languages:
        for spelled in (name.lower(), name.upper()):
            created = await create_poc(client, admin, language=spelled)
            assert created["language"] == name


@pytest.mark.parametrize("language", ["Klingon", "", "Python3", "java script"])
async def test_unsupported_language_is_refused(
    client: Client, admin: Account, language: str
) -> None:
    resp = await client.post(
        "/v1/pocs", headers=admin.auth, json=poc_body(admin, language=language)
    )
    await expect_rejected(resp, "language")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", None),  # None: the field is left out
        ("title", ""),
        ("title", "   "),
        ("title", "x" * 201),
        ("description", None),
        ("language", None),
        ("tags", None),
        ("tags", []),
        ("tags", [f"tag{i}" for i in range(21)]),
        ("tags", ["ok", "x" * 51]),
        ("tags", ["ok", "   "]),
        ("tags", [""]),
        ("repositoryUrl", "ftp://git.example/repo"),
        ("repositoryUrl", "javascript:alert(1)"),
        ("repositoryUrl", "http://"),
        ("repositoryUrl", "https:///no-host"),
        ("repositoryUrl", "git.example/repo"),
        ("userId", None),
        ("tenantId", None),
    ],
)
async def test_create_breaking_a_rule_is_422(
    client: Client, admin: Account, field: str, value: Any
) -> None:
    body = poc_body(admin)
    if value is None:
        del body[field]
    else:
        body[field] = value
    resp = await client.post("/v1/pocs", headers=admin.auth, json=body)
    await expect_rejected(resp, field)
    assert (await get_ok(client, admin, "/v1/pocs/mine"))["totalCount"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", 123),
        ("description", ["not", "text"]),
        ("language", 7),
        ("tags", "redis,streams"),
        ("tags", [1, 2]),
        ("repositoryUrl", 42),
        ("documentation", {"md": "x"}),
        ("userId", "not-a-uuid"),
        ("userId", 12),
        ("tenantId", True),
    ],
)
async def test_create_with_wrong_types_is_422(
    client: Client, admin: Account, field: str, value: Any
) -> None:
    resp = await client.post("/v1/pocs", headers=admin.auth, json=poc_body(admin, **{field: value}))
    await expect_rejected(resp, field)


async def test_create_refuses_unknown_fields(client: Client, admin: Account) -> None:
    resp = await client.post("/v1/pocs", headers=admin.auth, json=poc_body(admin, viewCount=1000))
    await expect_rejected(resp, "viewCount")


async def test_boundary_values_are_accepted(client: Client, admin: Account) -> None:
    tags = [f"t{i}" for i in range(19)] + ["y" * 50]
    created = await create_poc(
        client, admin, title="x" * 200, tags=tags, repositoryUrl="http://git.example"
    )
    assert created["title"] == "x" * 200
    assert created["tags"] == tags
    assert created["repositoryUrl"] == "http://git.example"


async def test_tags_are_trimmed_lower_cased_and_deduplicated(
    client: Client, admin: Account
) -> None:
    created = await create_poc(
        client, admin, tags=[" Redis ", "STREAMS", "redis", "Streams ", "  catch-UP"]
    )
    assert created["tags"] == ["redis", "streams", "catch-up"]
    assert (await read_poc(client, admin, created["pocId"]))["tags"] == created["tags"]
    assert await popular_tags(client, admin) == {"redis": 1, "streams": 1, "catch-up": 1}


async def test_userid_of_someone_else_is_403(client: Client, admin: Account) -> None:
    other = await register(client, admin)
    resp = await client.post(
        "/v1/pocs", headers=admin.auth, json=poc_body(admin, userId=other.user_id)
    )
    await expect_error(resp, 403, "user_mismatch")
    assert (await get_ok(client, other, "/v1/pocs/mine"))["totalCount"] == 0


async def test_tenantid_of_another_tenant_is_403(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    resp = await client.post(
        "/v1/pocs", headers=admin.auth, json=poc_body(admin, tenantId=stranger.tenant_id)
    )
    await expect_error(resp, 403, "tenant_mismatch")
    assert (await search(client, stranger))["totalCount"] == 0
    assert (await search(client, admin))["totalCount"] == 0


async def test_viewer_cannot_create(client: Client, admin: Account) -> None:
    viewer = await register(client, admin, role="viewer")
    resp = await client.post("/v1/pocs", headers=viewer.auth, json=poc_body(viewer))
    await expect_error(resp, 403, "forbidden")
    assert (await search(client, admin))["totalCount"] == 0


async def test_user_can_create(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    created = await create_poc(client, user)
    assert created["userId"] == user.user_id


async def test_max_pocs_quota_and_deletion_frees_a_slot(client: Client) -> None:
    admin = await signup(client, configuration={"maxPocs": 2})
    first = await create_poc(client, admin)
    await create_poc(client, admin)
    resp = await client.post("/v1/pocs", headers=admin.auth, json=poc_body(admin))
    await expect_error(resp, 403, "quota_exceeded")
    assert (await get_ok(client, admin, "/v1/pocs/mine"))["totalCount"] == 2
    await delete_poc(client, admin, first["pocId"])
    await create_poc(client, admin)
    resp = await client.post("/v1/pocs", headers=admin.auth, json=poc_body(admin))
    await expect_error(resp, 403, "quota_exceeded")


async def test_max_pocs_quota_holds_under_concurrent_creates(client: Client) -> None:
    admin = await signup(client, configuration={"maxPocs": 2})
    resps = await asyncio.gather(
        *(client.post("/v1/pocs", headers=admin.auth, json=poc_body(admin)) for _ in range(6))
    )
    statuses = sorted(r.status for r in resps)
    assert statuses == [201, 201, 403, 403, 403, 403]
    assert (await get_ok(client, admin, "/v1/pocs/mine"))["totalCount"] == 2


# --- reading ---------------------------------------------------------------------------------


async def test_each_read_counts_one_view(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    seen = [(await read_poc(client, admin, poc["pocId"]))["metrics"]["views"] for _ in range(3)]
    assert seen == [1, 2, 3]


async def test_read_reports_favorites(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    assert (await read_poc(client, admin, poc["pocId"]))["metrics"]["favorites"] == 0
    fans = [await register(client, admin) for _ in range(2)]
    for fan in fans:
        await add_favorite(client, fan, poc["pocId"])
    metrics = (await read_poc(client, admin, poc["pocId"]))["metrics"]
    assert metrics == {"views": 2, "favorites": 2}


async def test_unknown_or_malformed_poc_id_is_404(client: Client, admin: Account) -> None:
    for poc_id in (str(uuid.uuid4()), "not-a-uuid"):
        await expect_error(
            await client.get(f"/v1/pocs/{poc_id}", headers=admin.auth), 404, "not_found"
        )


async def test_read_needs_a_token(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    resp = await client.get(f"/v1/pocs/{poc['pocId']}")
    assert resp.status == 401


# --- changes ---------------------------------------------------------------------------------


async def test_owner_updates_a_poc(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    poc = await create_poc(client, user, repositoryUrl="https://git.example/a")
    resp = await update_poc(
        client,
        user,
        poc["pocId"],
        {
            "title": " Renamed ",
            "description": "New text",
            "language": "rust",
            "tags": ["New", "new", "other"],
            "documentation": "docs",
        },
    )
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert set(answer) == {"pocId", "title", "updatedAt", "success"}
    assert answer["pocId"] == poc["pocId"]
    assert answer["title"] == "Renamed"
    assert answer["success"] is True
    assert datetime.fromisoformat(answer["updatedAt"]) > datetime.fromisoformat(poc["updatedAt"])
    now = await read_poc(client, user, poc["pocId"])
    assert now["title"] == "Renamed"
    assert now["description"] == "New text"
    assert now["language"] == "Rust"
    assert now["tags"] == ["new", "other"]
    assert now["documentation"] == "docs"
    assert now["repositoryUrl"] == "https://git.example/a"  # untouched
    assert now["createdAt"] == poc["createdAt"]
    assert now["updatedAt"] == answer["updatedAt"]


async def test_admin_updates_a_users_poc(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    poc = await create_poc(client, user)
    resp = await update_poc(client, admin, poc["pocId"], {"title": "Set by admin"})
    assert resp.status == 200, await resp.text()
    now = await read_poc(client, user, poc["pocId"])
    assert now["title"] == "Set by admin"
    assert now["userId"] == user.user_id


@pytest.mark.parametrize("role", ["user", "viewer"])
async def test_other_non_admin_cannot_update_or_delete(
    client: Client, admin: Account, engines: Engines, role: str
) -> None:
    owner = await register(client, admin)
    other = await register(client, admin, role=role)
    poc = await create_poc(client, owner, title="Original")
    resp = await update_poc(client, other, poc["pocId"], {"title": "Hijacked"})
    await expect_error(resp, 403, "forbidden")
    resp = await client.delete(f"/v1/pocs/{poc['pocId']}", headers=other.auth)
    await expect_error(resp, 403, "forbidden")
    row = await db_poc(engines.database_url, poc["pocId"])
    assert (row["title"], row["status"]) == ("Original", "active")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),  # a rule on the whole body: at least one field
        ({"title": None}, "body"),  # and no null for a required column
        ({"description": None}, "body"),
        ({"tags": None}, "body"),
        ({"language": None}, "body"),
        ({"status": None}, "body"),
        ({"status": "deleted"}, "status"),
        ({"status": "gone"}, "status"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"tags": []}, "tags"),
        ({"language": "Klingon"}, "language"),
        ({"repositoryUrl": "ftp://git.example/x"}, "repositoryUrl"),
        ({"userId": "00000000-0000-0000-0000-000000000000"}, "userId"),
    ],
)
async def test_update_breaking_a_rule_is_422(
    client: Client, admin: Account, engines: Engines, body: dict[str, Any], field: str
) -> None:
    poc = await create_poc(client, admin, title="Kept")
    resp = await update_poc(client, admin, poc["pocId"], body)
    await expect_rejected(resp, field)
    row = await db_poc(engines.database_url, poc["pocId"])
    assert (row["title"], row["status"]) == ("Kept", "active")


async def test_archiving_is_allowed_and_archived_pocs_stay_visible(
    client: Client, admin: Account
) -> None:
    poc = await create_poc(client, admin)
    resp = await update_poc(client, admin, poc["pocId"], {"status": "archived"})
    assert resp.status == 200, await resp.text()
    assert (await read_poc(client, admin, poc["pocId"]))["status"] == "archived"
    found = await search(client, admin, {"status": "archived"})
    assert ids(found) == [poc["pocId"]]
    resp = await update_poc(client, admin, poc["pocId"], {"status": "active"})
    assert resp.status == 200, await resp.text()
    assert (await read_poc(client, admin, poc["pocId"]))["status"] == "active"


async def test_null_repository_url_clears_it(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin, repositoryUrl="https://git.example/r")
    assert (await read_poc(client, admin, poc["pocId"]))["repositoryUrl"] == "https://git.example/r"
    resp = await update_poc(client, admin, poc["pocId"], {"repositoryUrl": None})
    assert resp.status == 200, await resp.text()
    assert (await read_poc(client, admin, poc["pocId"]))["repositoryUrl"] is None


# --- soft deletion ---------------------------------------------------------------------------


async def test_soft_deleted_poc_disappears_everywhere(
    client: Client, admin: Account, engines: Engines
) -> None:
    user = await register(client, admin)
    title = f"Vanishing {unique('v')}"
    gone = await create_poc(client, user, title=title, language="Elixir", tags=["ghost", "shared"])
    kept = await create_poc(client, user, title="Keeper", language="Go", tags=["shared"])
    await read_poc(client, user, gone["pocId"])  # cached before the deletion

    resp = await client.delete(f"/v1/pocs/{gone['pocId']}", headers=user.auth)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    assert answer["success"] is True
    assert isinstance(answer["message"], str)

    path = f"/v1/pocs/{gone['pocId']}"
    await expect_error(await client.get(path, headers=user.auth), 404, "not_found")
    await expect_error(
        await update_poc(client, user, gone["pocId"], {"title": "x"}), 404, "not_found"
    )
    await expect_error(await client.delete(path, headers=user.auth), 404, "not_found")

    mine = await get_ok(client, user, "/v1/pocs/mine")
    assert (ids(mine), mine["totalCount"]) == ([kept["pocId"]], 1)
    theirs = await get_ok(client, admin, f"/v1/users/{user.user_id}/pocs")
    assert (ids(theirs), theirs["totalCount"]) == ([kept["pocId"]], 1)
    assert (await search(client, admin, {"name": title}))["totalCount"] == 0
    everything = await search(client, admin)
    assert ids(everything) == [kept["pocId"]]
    assert everything["facets"] == {
        "languages": [{"value": "Go", "count": 1}],
        "tags": [{"value": "shared", "count": 1}],
    }
    assert (await search(client, admin, {"tags": "ghost"}))["totalCount"] == 0
    assert (await search(client, admin, {"language": "elixir"}))["totalCount"] == 0
    hints = await suggest(client, admin, {"prefix": "vanish"})
    assert hints["titles"] == []
    assert (await suggest(client, admin, {"prefix": "gho"}))["tags"] == []
    assert await popular_tags(client, admin) == {"shared": 1}

    row = await db_poc(engines.database_url, gone["pocId"])
    assert row["status"] == "deleted"
    assert row["deleted_at"] is not None
    assert row["title"] == title


async def test_admin_deletes_a_users_poc(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    poc = await create_poc(client, user)
    await delete_poc(client, admin, poc["pocId"])
    resp = await client.get(f"/v1/pocs/{poc['pocId']}", headers=user.auth)
    await expect_error(resp, 404, "not_found")


async def test_poc_of_another_tenant_is_404_and_untouched(
    client: Client, admin: Account, engines: Engines
) -> None:
    poc = await create_poc(client, admin, title="Private", tags=["secret"])
    stranger = await signup(client)
    path = f"/v1/pocs/{poc['pocId']}"
    await expect_error(await client.get(path, headers=stranger.auth), 404, "not_found")
    await expect_error(
        await update_poc(client, stranger, poc["pocId"], {"title": "Stolen"}), 404, "not_found"
    )
    await expect_error(await client.delete(path, headers=stranger.auth), 404, "not_found")
    row = await db_poc(engines.database_url, poc["pocId"])
    assert (row["title"], row["status"], row["view_count"]) == ("Private", "active", 0)
    now = await read_poc(client, admin, poc["pocId"])
    assert (now["title"], now["status"], now["tags"]) == ("Private", "active", ["secret"])
    assert now["metrics"]["views"] == 1  # the stranger's reads counted nothing


# --- lists -----------------------------------------------------------------------------------


async def test_mine_pages_newest_first(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    made = [(await create_poc(client, user, title=f"Mine {i}"))["pocId"] for i in range(5)]
    await create_poc(client, admin)  # someone else's
    newest_first = list(reversed(made))
    pages = [
        await get_ok(client, user, "/v1/pocs/mine", {"page": page, "limit": 2})
        for page in (1, 2, 3, 4)
    ]
    assert [ids(p) for p in pages] == [newest_first[0:2], newest_first[2:4], newest_first[4:], []]
    for number, page in enumerate(pages, start=1):
        assert (page["totalCount"], page["page"], page["limit"], page["totalPages"]) == (
            5,
            number,
            2,
            3,
        )
    assert set(pages[0]["pocs"][0]) == {
        "pocId",
        "title",
        "description",
        "language",
        "tags",
        "userId",
        "status",
        "createdAt",
        "metrics",
    }


@pytest.mark.parametrize("params", [{"page": 0}, {"limit": 0}, {"limit": 101}, {"page": "x"}])
async def test_mine_refuses_bad_paging(
    client: Client, admin: Account, params: dict[str, Any]
) -> None:
    resp = await client.get("/v1/pocs/mine", headers=admin.auth, params=params)
    await expect_error(resp, 400, "invalid_query")


async def test_user_pocs_lists_that_users_pocs_only(client: Client, admin: Account) -> None:
    user = await register(client, admin)
    theirs = [(await create_poc(client, user))["pocId"] for _ in range(3)]
    await create_poc(client, admin)
    viewer = await register(client, admin, role="viewer")
    listed = await get_ok(client, viewer, f"/v1/users/{user.user_id}/pocs", {"limit": 2})
    assert ids(listed) == list(reversed(theirs))[:2]
    assert (listed["totalCount"], listed["totalPages"]) == (3, 2)
    empty = await get_ok(client, admin, f"/v1/users/{viewer.user_id}/pocs")
    assert (empty["pocs"], empty["totalCount"], empty["totalPages"]) == ([], 0, 0)


async def test_user_pocs_of_another_tenants_user_is_404(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    await create_poc(client, stranger)
    for user_id in (stranger.user_id, str(uuid.uuid4()), "nope"):
        resp = await client.get(f"/v1/users/{user_id}/pocs", headers=admin.auth)
        await expect_error(resp, 404, "not_found")


async def test_list_metrics_follow_favorites(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    fan = await register(client, admin)
    await add_favorite(client, fan, poc["pocId"])
    mine = await get_ok(client, admin, "/v1/pocs/mine")
    assert mine["pocs"][0]["metrics"]["favorites"] == 1
    assert titles(mine) == [poc["title"]]


# --- text the database cannot store, and text it must ---------------------------------------


@pytest.mark.parametrize("field", ["description", "documentation"])
async def test_nul_character_in_free_text_is_422_on_create(
    client: Client, admin: Account, field: str
) -> None:
    # PostgreSQL text cannot hold U+0000: the rule belongs at the edge, not a 500 from asyncpg.
    resp = await client.post(
        "/v1/pocs", headers=admin.auth, json=poc_body(admin, **{field: "before\u0000after"})
    )
    await expect_rejected(resp, field)


@pytest.mark.parametrize("field", ["description", "documentation"])
async def test_nul_character_in_free_text_is_422_on_update(
    client: Client, admin: Account, engines: Engines, field: str
) -> None:
    poc = await create_poc(client, admin, description="kept")
    resp = await update_poc(client, admin, poc["pocId"], {field: "x\u0000y"})
    await expect_rejected(resp, field)
    assert (await db_poc(engines.database_url, poc["pocId"]))["title"] == poc["title"]


async def test_multiline_markdown_is_kept(client: Client, admin: Account) -> None:
    text = "# Title\n\n\tindented\r\n- item"
    created = await create_poc(client, admin, description=text, documentation=text)
    poc = await read_poc(client, admin, created["pocId"])
    assert (poc["description"], poc["documentation"]) == (text, text)


@pytest.mark.parametrize(
    "title",
    [
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian: a zero-width non-joiner
        "Family \U0001f468\u200d\U0001f469\u200d\U0001f467 planner",  # an emoji ZWJ sequence
    ],
)
async def test_titles_with_joiners_are_accepted(client: Client, admin: Account, title: str) -> None:
    # U+200C and U+200D are format characters (category Cf) that ordinary text needs; only
    # control characters (Cc) have no place in a title.
    resp = await client.post("/v1/pocs", headers=admin.auth, json=poc_body(admin, title=title))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["title"] == title


@pytest.mark.parametrize("title", ["bell\u0007", "line\nbreak", "nul\u0000"])
async def test_titles_with_control_characters_are_refused(
    client: Client, admin: Account, title: str
) -> None:
    resp = await client.post("/v1/pocs", headers=admin.auth, json=poc_body(admin, title=title))
    await expect_rejected(resp, "title")
