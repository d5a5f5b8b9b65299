"""Search, suggestions and popular tags over a tenant's POCs, and their tenant isolation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Engines
from tests.helpers import Account, register, signup
from tests.poc_helpers import (
    Client,
    add_favorite,
    create_poc,
    delete_poc,
    expect_error,
    facet_counts,
    get_ok,
    ids,
    owner_execute,
    popular_tags,
    search,
    suggest,
    titles,
    update_poc,
)


@dataclass(frozen=True)
class Seed:
    title: str
    language: str
    tags: tuple[str, ...]
    description: str
    documentation: str | None
    owner: str  # "admin" or "bob"
    created: datetime


SEEDS: dict[str, Seed] = {
    "redis": Seed(
        "Redis streams catch-up",
        "Python",
        ("redis", "streams", "messaging"),
        "Consumers resume after downtime",
        "Replay entries from the last acknowledged id.",
        "admin",
        datetime(2024, 1, 10, 12, tzinfo=UTC),
    ),
    "kafka": Seed(
        "Kafka consumer groups",
        "Java",
        ("kafka", "messaging"),
        "Rebalancing consumers in a group",
        None,
        "bob",
        datetime(2024, 2, 10, 12, tzinfo=UTC),
    ),
    "postgres": Seed(
        "Postgres logical replication",
        "Go",
        ("postgres", "replication"),
        "Ship changes to a second cluster",
        "Set up a publication and a subscription.",
        "bob",
        datetime(2024, 3, 10, 12, tzinfo=UTC),
    ),
    "async": Seed(
        "async runtime in Rust",
        "Rust",
        ("rust", "async"),
        "A tiny executor with wakers",
        None,
        "admin",
        datetime(2024, 4, 10, 12, tzinfo=UTC),
    ),
    "queues": Seed(
        "Python asyncio queues",
        "Python",
        ("python", "async", "messaging"),
        "Producer and consumer with asyncio",
        None,
        "admin",
        datetime(2024, 5, 10, 12, tzinfo=UTC),
    ),
}


@dataclass
class Catalog:
    """A tenant seeded with ``SEEDS``: its accounts and the created POCs by key."""

    admin: Account
    bob: Account
    pocs: dict[str, dict[str, Any]]

    def id(self, key: str) -> str:
        return str(self.pocs[key]["pocId"])

    def ids(self, *keys: str) -> list[str]:
        return [self.id(k) for k in keys]

    def owner(self, key: str) -> Account:
        return self.admin if SEEDS[key].owner == "admin" else self.bob


@pytest.fixture
async def catalog(client: Client, admin: Account, engines: Engines) -> Catalog:
    """A fresh tenant holding the ``SEEDS`` POCs, each created at its ``created`` time."""
    bob = await register(client, admin)
    cat = Catalog(admin=admin, bob=bob, pocs={})
    for key, seed in SEEDS.items():
        cat.pocs[key] = await create_poc(
            client,
            cat.owner(key),
            title=seed.title,
            language=seed.language.lower(),
            tags=list(seed.tags),
            description=seed.description,
            documentation=seed.documentation,
        )
        await owner_execute(
            engines.database_url,
            "UPDATE pocs SET created_at = $2 WHERE id = $1::uuid",
            cat.id(key),
            seed.created,
        )
    return cat


def keyset(cat: Catalog, result: dict[str, Any]) -> set[str]:
    """The seed keys of a result's POCs."""
    by_id = {cat.id(k): k for k in cat.pocs}
    return {by_id[i] for i in ids(result)}


# --- filters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "stream"}, {"redis"}),
        ({"name": "STREAMS"}, {"redis"}),
        ({"name": "logical repl"}, {"postgres"}),
        ({"name": "stremas"}, {"redis"}),  # a typo
        ({"name": "replicaton"}, {"postgres"}),  # a typo
        ({"name": "zebra"}, set()),
        ({"language": "python"}, {"redis", "queues"}),
        ({"language": "PYTHON"}, {"redis", "queues"}),
        ({"language": "Rust"}, {"async"}),
        ({"language": "Haskell"}, set()),
        ({"tags": "async"}, {"async", "queues"}),
        ({"tags": "ASYNC"}, {"async", "queues"}),
        ({"tags": "redis,kafka"}, {"redis", "kafka"}),
        ({"tags": "redis,kafka", "tagsMode": "any"}, {"redis", "kafka"}),
        ({"tags": "messaging,async", "tagsMode": "all"}, {"queues"}),
        ({"tags": "messaging,rust", "tagsMode": "all"}, set()),
        ({"q": "replaying"}, {"redis"}),  # stemmed, found in the documentation
        ({"q": "executors"}, {"async"}),  # in the description
        ({"q": "subscriptions"}, {"postgres"}),  # in the documentation
        ({"q": "consumer"}, {"redis", "kafka", "queues"}),
        ({"q": "Kafka groups"}, {"kafka"}),
        ({"q": "kafka -groups"}, set()),
        ({"q": "nothing-like-this"}, set()),
        ({"createdFrom": "2024-02-15T00:00:00Z", "createdTo": "2024-04-15T00:00:00Z"},
         {"postgres", "async"}),
        ({"createdFrom": "2024-04-01T00:00:00Z"}, {"async", "queues"}),
        ({"createdTo": "2024-02-01T00:00:00Z"}, {"redis"}),
        ({"status": "active"}, set(SEEDS)),
        ({"status": "archived"}, set()),
    ],
)  # fmt: skip
async def test_filters(
    client: Client, catalog: Catalog, params: dict[str, Any], expected: set[str]
) -> None:
    found = await search(client, catalog.admin, params)
    assert keyset(catalog, found) == expected
    assert found["totalCount"] == len(expected)


async def test_repeated_tags_parameters_are_any_of(client: Client, catalog: Catalog) -> None:
    found = await search(client, catalog.bob, [("tags", "redis"), ("tags", "kafka")])
    assert keyset(catalog, found) == {"redis", "kafka"}
    found = await search(
        client, catalog.bob, [("tags", "messaging"), ("tags", "python"), ("tagsMode", "all")]
    )
    assert keyset(catalog, found) == {"queues"}


async def test_owner_filter(client: Client, catalog: Catalog) -> None:
    found = await search(client, catalog.admin, {"owner": catalog.bob.user_id})
    assert keyset(catalog, found) == {"kafka", "postgres"}
    found = await search(client, catalog.admin, {"owner": catalog.admin.user_id})
    assert keyset(catalog, found) == {"redis", "async", "queues"}


async def test_combined_filters_narrow_each_other(client: Client, catalog: Catalog) -> None:
    params: dict[str, str] = {
        "language": "python",
        "tags": "messaging",
        "q": "consumer",
        "owner": catalog.admin.user_id,
        "createdFrom": "2024-03-01T00:00:00Z",
    }
    found = await search(client, catalog.admin, params)
    assert keyset(catalog, found) == {"queues"}
    # Each filter on its own lets more through, so every one of them took part.
    for name in params:
        alone = await search(client, catalog.admin, {name: params[name]})
        assert alone["totalCount"] > 1, name
    without_date = {k: v for k, v in params.items() if k != "createdFrom"}
    assert keyset(catalog, await search(client, catalog.admin, without_date)) == {
        "redis",
        "queues",
    }


async def test_search_summaries_carry_the_poc_fields(client: Client, catalog: Catalog) -> None:
    found = await search(client, catalog.admin, {"name": "Kafka consumer groups"})
    assert found["pocs"] == [
        {
            "pocId": catalog.id("kafka"),
            "title": "Kafka consumer groups",
            "description": "Rebalancing consumers in a group",
            "language": "Java",
            "tags": ["kafka", "messaging"],
            "userId": catalog.bob.user_id,
            "status": "active",
            "createdAt": "2024-02-10T12:00:00Z",
            "metrics": {"views": 0, "favorites": 0},
        }
    ]


# --- ordering and paging ---------------------------------------------------------------------


async def test_sort_created_is_newest_first(client: Client, catalog: Catalog) -> None:
    newest_first = sorted(SEEDS, key=lambda k: SEEDS[k].created, reverse=True)
    for params in ({"sort": "created"}, {}, {"sort": "relevance"}):
        assert ids(await search(client, catalog.admin, params)) == catalog.ids(*newest_first)


async def test_sort_title_ignores_case(client: Client, catalog: Catalog) -> None:
    found = await search(client, catalog.admin, {"sort": "title"})
    expected = sorted((s.title for s in SEEDS.values()), key=str.lower)
    assert expected[0] == "async runtime in Rust"  # lower case, yet first
    assert titles(found) == expected


async def test_sort_popularity_favorites_then_views(
    client: Client, catalog: Catalog, engines: Engines
) -> None:
    carol = await register(client, catalog.admin)
    await add_favorite(client, catalog.admin, catalog.id("postgres"))
    await add_favorite(client, carol, catalog.id("postgres"))
    await add_favorite(client, catalog.admin, catalog.id("kafka"))
    await add_favorite(client, carol, catalog.id("queues"))
    for key, views in {"kafka": 50, "queues": 10, "redis": 1000}.items():
        await owner_execute(
            engines.database_url,
            "UPDATE pocs SET view_count = $2 WHERE id = $1::uuid",
            catalog.id(key),
            views,
        )
    found = await search(client, catalog.admin, {"sort": "popularity"})
    assert ids(found) == catalog.ids("postgres", "kafka", "queues", "redis", "async")
    metrics = {p["pocId"]: p["metrics"] for p in found["pocs"]}
    assert metrics[catalog.id("postgres")] == {"views": 0, "favorites": 2}
    assert metrics[catalog.id("kafka")] == {"views": 50, "favorites": 1}


async def test_relevance_ranks_title_over_description_over_documentation(
    client: Client, admin: Account
) -> None:
    in_docs = await create_poc(
        client, admin, title="Alpha", description="Plain", documentation="Uses a flux capacitor."
    )
    in_title = await create_poc(client, admin, title="Flux capacitor", description="Plain")
    in_description = await create_poc(
        client, admin, title="Beta", description="Powered by a flux capacitor"
    )
    await create_poc(client, admin, title="Gamma", description="Unrelated")
    found = await search(client, admin, {"q": "flux capacitor", "sort": "relevance"})
    assert ids(found) == [in_title["pocId"], in_description["pocId"], in_docs["pocId"]]


async def test_relevance_by_name_puts_the_closest_title_first(
    client: Client, admin: Account
) -> None:
    close = await create_poc(client, admin, title="Stream processing")
    far = await create_poc(client, admin, title="Upstreaming patches to the kernel")
    newest = await create_poc(client, admin, title="Mainstream adoption notes")
    found = await search(client, admin, {"name": "stream", "sort": "relevance"})
    assert ids(found)[0] == close["pocId"]
    assert set(ids(found)) == {close["pocId"], far["pocId"], newest["pocId"]}


@pytest.mark.parametrize("sort", ["relevance", "created", "title", "popularity"])
@pytest.mark.parametrize(
    "text",
    [{"name": "kafla"}, {"name": "con"}, {"q": "consumer"}, {"name": "consumer", "q": "groups"}],
)
async def test_every_sort_of_a_text_search_orders_the_same_hits(
    client: Client, catalog: Catalog, sort: str, text: dict[str, str]
) -> None:
    by_relevance = await search(client, catalog.admin, {**text, "limit": 100})
    found = await search(client, catalog.admin, {**text, "sort": sort, "limit": 100})

    assert found["totalCount"] == by_relevance["totalCount"] > 0
    assert sorted(ids(found)) == sorted(ids(by_relevance))
    assert found["facets"] == by_relevance["facets"]
    keys = keyset(catalog, found)
    if sort == "created":
        assert ids(found) == catalog.ids(*sorted(keys, key=lambda k: SEEDS[k].created)[::-1])
    if sort == "title":
        assert titles(found) == sorted(titles(found), key=str.lower)


async def test_short_names_match_substrings_and_longer_ones_forgive_typos(
    client: Client, admin: Account
) -> None:
    terraform = await create_poc(client, admin, title="Terraform modules")
    test = await create_poc(client, admin, title="Test harness")
    kafka = await create_poc(client, admin, title="Kafka streams")

    # "ter" shares two trigrams with "Test": similar enough for a typo, but three letters
    # are too few to guess a typo from.
    assert ids(await search(client, admin, {"name": "ter"})) == [terraform["pocId"]]
    assert ids(await search(client, admin, {"name": "kafla"})) == [kafka["pocId"]]
    assert test["pocId"] in ids(await search(client, admin, {"name": "tes"}))
    # Found both as a substring and as similar: listed and counted once.
    both = await search(client, admin, {"name": "kafka"})
    assert (ids(both), both["totalCount"]) == ([kafka["pocId"]], 1)
    assert both["facets"]["tags"] == [{"value": t, "count": 1} for t in sorted(kafka["tags"])]


async def test_a_typo_is_one_edit_up_to_five_letters_and_two_from_six(
    client: Client, admin: Account
) -> None:
    kafka = (await create_poc(client, admin, title="Kafka streams"))["pocId"]

    assert ids(await search(client, admin, {"name": "kafla"})) == [kafka]  # 1 edit, 5 letters
    assert ids(await search(client, admin, {"name": "kaflq"})) == []  # 2 edits, 5 letters
    assert ids(await search(client, admin, {"name": "straems"})) == [kafka]  # 2 edits, 7
    assert ids(await search(client, admin, {"name": "sxraeus"})) == []  # 3 edits, 7
    assert ids(await search(client, admin, {"name": "KAFLA"})) == [kafka]
    assert ids(await search(client, admin, {"name": "jafka"})) == []  # the first letter
    assert ids(await search(client, admin, {"name": "sreams"})) == [kafka]  # a letter missing


async def test_a_swap_of_two_adjacent_letters_is_one_edit(client: Client, admin: Account) -> None:
    # As OpenSearch counts them: the optimal string alignment distance, where a swapped pair
    # is one edit that no other edit may touch, and the first letter must be right.
    kafka = (await create_poc(client, admin, title="Kafka Streams POC"))["pocId"]

    assert ids(await search(client, admin, {"name": "kafak"})) == [kafka]
    assert ids(await search(client, admin, {"name": "Kafak"})) == [kafka]
    assert ids(await search(client, admin, {"name": "kfaka"})) == [kafka]
    assert ids(await search(client, admin, {"name": "akfka"})) == []  # the first letter
    assert ids(await search(client, admin, {"name": "kfaak"})) == []  # 2 swaps, 5 letters
    assert ids(await search(client, admin, {"name": "srtemas"})) == [kafka]  # 2 swaps, 7
    assert ids(await search(client, admin, {"name": "srteamz"})) == [kafka]  # swap, letter
    # A letter inserted between the swapped ones: two edits by Damerau-Levenshtein, three
    # by optimal string alignment.
    assert ids(await search(client, admin, {"name": "srxteams"})) == []
    assert ids(await search(client, admin, {"name": "kafak srtemas"})) == [kafka]
    assert ids(await search(client, admin, {"name": "kafak srtemsa"})) == []  # 3 edits


async def test_a_short_name_is_no_typo_of_every_word_sharing_its_first_letters(
    client: Client, admin: Account
) -> None:
    # By trigram word similarity, "wind" was as close to "with" as to "wine": both share
    # two of its five trigrams.
    windowed = await create_poc(client, admin, title="Windowed joins")
    await create_poc(client, admin, title="Connection pool with Django")
    wine = await create_poc(client, admin, title="Wine cellar inventory")

    found = await search(client, admin, {"name": "wind", "sort": "relevance"})

    assert ids(found) == [windowed["pocId"], wine["pocId"]]
    assert found["totalCount"] == 2


async def test_every_word_of_a_misspelled_name_must_be_in_the_title(
    client: Client, admin: Account
) -> None:
    kafka = (await create_poc(client, admin, title="Kafka streams"))["pocId"]
    await create_poc(client, admin, title="Kafka consumer groups")
    await create_poc(client, admin, title="Redis streams")

    assert ids(await search(client, admin, {"name": "kafla straems"})) == [kafka]
    assert ids(await search(client, admin, {"name": "kafla zebra"})) == []
    # Words too short for a typo do not have to be anywhere.
    assert ids(await search(client, admin, {"name": "straems of kafla"})) == [kafka]


async def test_a_renamed_title_is_found_by_a_typo_of_its_new_words(
    client: Client, admin: Account
) -> None:
    poc = await create_poc(client, admin, title="Kafka streams")
    resp = await update_poc(client, admin, poc["pocId"], {"title": "Zookeeper ensembles"})
    assert resp.status == 200, await resp.text()

    assert ids(await search(client, admin, {"name": "zookeper"})) == [poc["pocId"]]
    assert ids(await search(client, admin, {"name": "kafla"})) == []


async def test_typos_are_counted_in_letters_not_bytes(client: Client, admin: Account) -> None:
    poc = (await create_poc(client, admin, title="Ünïcode Straße"))["pocId"]

    # "ï" for "i" is one edit, not two bytes; "ss" for "ß" is two.
    assert ids(await search(client, admin, {"name": "ÜNICODE strasse"})) == [poc]


async def test_a_long_name_of_many_repeated_words_is_answered(
    client: Client, admin: Account
) -> None:
    kafka = (await create_poc(client, admin, title="Kafka streams"))["pocId"]
    name = " ".join(["kafla", "straems"] * 14)  # 195 characters, 28 words

    found = await search(client, admin, {"name": name})

    assert (ids(found), found["totalCount"]) == ([kafka], 1)


@pytest.mark.parametrize(
    ("name", "finds"),
    [
        ("kafla\\", True),
        ("!kafla", True),
        ("kafla & | !", True),
        ("kafla')|('x", True),  # "x" is too short to have to be in the title
        ("ka:*fla", False),  # no word long enough for a typo
        ("o'neil's kafla", False),  # nothing close to "neil"
    ],
)
async def test_names_with_tsquery_syntax_are_plain_text(
    client: Client, admin: Account, name: str, finds: bool
) -> None:
    kafka = (await create_poc(client, admin, title="Kafka streams"))["pocId"]

    found = await search(client, admin, {"name": name})

    assert ids(found) == ([kafka] if finds else [])


async def test_paging(client: Client, catalog: Catalog) -> None:
    newest_first = catalog.ids(*sorted(SEEDS, key=lambda k: SEEDS[k].created, reverse=True))
    seen: list[str] = []
    for page in (1, 2, 3):
        found = await search(client, catalog.admin, {"sort": "created", "limit": 2, "page": page})
        assert (found["page"], found["limit"], found["totalCount"], found["totalPages"]) == (
            page,
            2,
            5,
            3,
        )
        seen += ids(found)
    assert seen == newest_first
    beyond = await search(client, catalog.admin, {"limit": 2, "page": 4})
    assert (beyond["pocs"], beyond["totalCount"], beyond["totalPages"]) == ([], 5, 3)
    one = await search(client, catalog.admin, {"limit": 100})
    assert (len(one["pocs"]), one["totalPages"]) == (5, 1)


async def test_empty_result_has_zero_pages(client: Client, admin: Account) -> None:
    found = await search(client, admin, {"name": "nothing"})
    assert (found["pocs"], found["totalCount"], found["totalPages"]) == ([], 0, 0)
    assert found["facets"] == {"languages": [], "tags": []}


# --- facets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"tags": "messaging", "limit": 1},
        {"language": "python"},
        {"q": "consumer", "page": 2, "limit": 1},
        {"owner": "bob"},
    ],
)
async def test_facets_count_the_whole_filtered_set(
    client: Client, catalog: Catalog, params: dict[str, Any]
) -> None:
    if params.get("owner") == "bob":
        params = {"owner": catalog.bob.user_id}
    everything = await search(client, catalog.admin, {**params, "limit": 100, "page": 1})
    matched = [SEEDS[k] for k in keyset(catalog, everything)]
    assert matched
    found = await search(client, catalog.admin, params)
    assert found["facets"] == {
        "languages": facet_counts(s.language for s in matched),
        "tags": facet_counts(t for s in matched for t in s.tags),
    }
    assert found["totalCount"] == len(matched)
    assert found["totalPages"] == math.ceil(len(matched) / found["limit"])


async def test_facets_exact_for_the_catalog(client: Client, catalog: Catalog) -> None:
    found = await search(client, catalog.admin, {"tags": "messaging"})
    assert found["facets"] == {
        "languages": [{"value": "Python", "count": 2}, {"value": "Java", "count": 1}],
        "tags": [
            {"value": "messaging", "count": 3},
            {"value": "async", "count": 1},
            {"value": "kafka", "count": 1},
            {"value": "python", "count": 1},
            {"value": "redis", "count": 1},
            {"value": "streams", "count": 1},
        ],
    }


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "-1"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "abc"},
        {"sort": "foo"},
        {"tagsMode": "x"},
        {"language": "Klingon"},
        {"owner": "not-a-uuid"},
        {"createdFrom": "yesterday"},
        {"tags": ""},
        {"tags": ",".join(f"t{i}" for i in range(21))},
        {"tags": "x" * 51},
        {"name": ""},
        {"name": "x" * 201},
        {"q": ""},
        {"status": "deleted"},
        {"unknown": "1"},
        {"tenant_id": "x"},
    ],
)
async def test_bad_query_is_400(client: Client, admin: Account, params: dict[str, str]) -> None:
    resp = await client.get("/v1/pocs/search", headers=admin.auth, params=params)
    error = await expect_error(resp, 400, "invalid_query")
    assert error["details"], error


@pytest.mark.parametrize(
    "params",
    [
        # Python's datetime ends at years 1 and 9999 in UTC, where asyncpg converts to; these
        # fall before or after once converted, though PostgreSQL itself could store them.
        {"createdFrom": "0001-01-01T00:00:00+14:00"},
        {"createdTo": "9999-12-31T23:00:00-14:00"},
    ],
)
async def test_dates_that_cannot_be_converted_to_utc_are_400(
    client: Client, admin: Account, params: dict[str, str]
) -> None:
    resp = await client.get("/v1/pocs/search", headers=admin.auth, params=params)
    error = await expect_error(resp, 400, "invalid_query")
    assert [d["field"] for d in error["details"]] == list(params), error


async def test_dates_at_the_ends_of_the_range_are_searched(client: Client, admin: Account) -> None:
    poc = await create_poc(client, admin)
    params = {"createdFrom": "0001-01-01T00:00:00Z", "createdTo": "9999-12-31T23:59:59Z"}
    assert ids(await search(client, admin, params)) == [poc["pocId"]]


@pytest.mark.parametrize("params", [{"q": "a\u0000b"}, {"name": "a\u0000b"}])
async def test_nul_character_in_text_parameters_is_400(
    client: Client, admin: Account, params: dict[str, str]
) -> None:
    # PostgreSQL cannot take U+0000 in text: refused as bad input, not a 500.
    resp = await client.get("/v1/pocs/search", headers=admin.auth, params=params)
    await expect_error(resp, 400, "invalid_query")
    resp = await client.get(
        "/v1/pocs/suggest", headers=admin.auth, params={"prefix": next(iter(params.values()))}
    )
    await expect_error(resp, 400, "invalid_query")


async def test_search_needs_a_token(client: Client) -> None:
    resp = await client.get("/v1/pocs/search")
    assert resp.status == 401


async def test_tenant_id_of_another_tenant_is_403(client: Client, admin: Account) -> None:
    stranger = await signup(client)
    resp = await client.get(
        "/v1/pocs/search", headers=admin.auth, params={"tenantId": stranger.tenant_id}
    )
    await expect_error(resp, 403, "tenant_mismatch")
    found = await search(client, admin, {"tenantId": admin.tenant_id})
    assert found["totalCount"] == 0


# --- literal wildcards and unicode -----------------------------------------------------------


async def test_like_wildcards_in_name_match_literally(client: Client, admin: Account) -> None:
    percent = await create_poc(client, admin, title="Cut latency by 50%")
    underscore = await create_poc(client, admin, title="snake_case helpers")
    backslash = await create_poc(client, admin, title="Paths like C:\\temp")
    await create_poc(client, admin, title="Plain title")
    await create_poc(client, admin, title="Cut latency by 500 ms")
    assert ids(await search(client, admin, {"name": "%"})) == [percent["pocId"]]
    assert ids(await search(client, admin, {"name": "_"})) == [underscore["pocId"]]
    assert ids(await search(client, admin, {"name": "\\"})) == [backslash["pocId"]]
    assert (await search(client, admin, {"name": "%%"}))["totalCount"] == 0
    assert (await search(client, admin, {"name": "__"}))["totalCount"] == 0


@pytest.mark.parametrize("name", ["c++", "(beta", "[x]", "a|b", "^$.*?{2}", "\\d+ #1 & ~"])
async def test_regex_characters_in_name_match_literally(
    client: Client, admin: Account, name: str
) -> None:
    """Relevance ranks word starts with a regular expression built from the name; the name
    must stay literal in it."""
    wanted = await create_poc(client, admin, title=f"Notes on {name} usage")
    await create_poc(client, admin, title="Unrelated title")
    found = await search(client, admin, {"name": name, "sort": "relevance"})
    assert ids(found)[0] == wanted["pocId"]


async def test_unicode_titles_and_tags(client: Client, admin: Account) -> None:
    cafe = await create_poc(client, admin, title="Café crème brûlée", tags=["Données"])
    tokyo = await create_poc(client, admin, title="東京 データ パイプライン", tags=["東京"])
    greek = await create_poc(client, admin, title="Ελληνικά δεδομένα")
    await create_poc(client, admin, title="Cafe without accents")
    assert cafe["tags"] == ["données"]
    assert ids(await search(client, admin, {"name": "crème"})) == [cafe["pocId"]]
    assert ids(await search(client, admin, {"name": "brûlée"})) == [cafe["pocId"]]
    assert ids(await search(client, admin, {"name": "データ"})) == [tokyo["pocId"]]
    assert ids(await search(client, admin, {"name": "δεδομένα"})) == [greek["pocId"]]
    assert ids(await search(client, admin, {"tags": "DONNÉES"})) == [cafe["pocId"]]
    assert ids(await search(client, admin, {"tags": "東京"})) == [tokyo["pocId"]]
    assert (await suggest(client, admin, {"prefix": "東"}))["tags"] == ["東京"]
    assert (await suggest(client, admin, {"prefix": "Ελλ"}))["titles"] == ["Ελληνικά δεδομένα"]


# --- suggestions -----------------------------------------------------------------------------


async def test_suggest_titles_by_prefix_and_by_word_prefix_most_popular_first(
    client: Client, admin: Account
) -> None:
    cluster = await create_poc(client, admin, title="Redis cluster failover")
    await create_poc(client, admin, title="Redis streams catch-up")
    building = await create_poc(client, admin, title="Building with redis")
    await create_poc(client, admin, title="Unrelated bored title")  # "red" inside a word
    fans = [await register(client, admin) for _ in range(2)]
    for fan in fans:
        await add_favorite(client, fan, building["pocId"])
    await add_favorite(client, fans[0], cluster["pocId"])
    hints = await suggest(client, admin, {"prefix": "red"})
    assert hints["titles"] == [
        "Building with redis",
        "Redis cluster failover",
        "Redis streams catch-up",
    ]
    hints = await suggest(client, admin, {"prefix": "RED", "limit": 2})
    assert hints["titles"] == ["Building with redis", "Redis cluster failover"]
    assert (await suggest(client, admin, {"prefix": "stre"}))["titles"] == [
        "Redis streams catch-up"
    ]
    assert (await suggest(client, admin, {"prefix": "eams"}))["titles"] == []


async def test_suggest_tags_by_prefix_most_used_first(client: Client, admin: Account) -> None:
    await create_poc(client, admin, tags=["redis", "reduce"])
    await create_poc(client, admin, tags=["redis", "reduce", "refactor"])
    await create_poc(client, admin, tags=["redis", "other"])
    hints = await suggest(client, admin, {"prefix": "Re"})
    assert hints["tags"] == ["redis", "reduce", "refactor"]
    assert (await suggest(client, admin, {"prefix": "re", "limit": 1}))["tags"] == ["redis"]
    assert (await suggest(client, admin, {"prefix": "red"}))["tags"] == ["redis", "reduce"]
    assert (await suggest(client, admin, {"prefix": "x"}))["tags"] == []


async def test_suggest_treats_wildcards_literally(client: Client, admin: Account) -> None:
    await create_poc(client, admin, title="100% coverage", tags=["c_lang"])
    await create_poc(client, admin, title="Anything else", tags=["cxlang"])
    assert (await suggest(client, admin, {"prefix": "%"}))["titles"] == []
    assert (await suggest(client, admin, {"prefix": "100%"}))["titles"] == ["100% coverage"]
    assert (await suggest(client, admin, {"prefix": "c_"}))["tags"] == ["c_lang"]


async def test_suggest_ignores_surrounding_whitespace_for_titles_as_for_tags(
    client: Client, admin: Account
) -> None:
    await create_poc(client, admin, title="Redis streams catch-up", tags=["redis"])
    hints = await suggest(client, admin, {"prefix": "  red"})
    assert hints == {"titles": ["Redis streams catch-up"], "tags": ["redis"]}


@pytest.mark.parametrize(
    "params", [{}, {"prefix": ""}, {"prefix": "a", "limit": "0"}, {"prefix": "a", "limit": "21"}]
)
async def test_suggest_bad_query_is_400(
    client: Client, admin: Account, params: dict[str, str]
) -> None:
    resp = await client.get("/v1/pocs/suggest", headers=admin.auth, params=params)
    await expect_error(resp, 400, "invalid_query")


# --- popular tags ----------------------------------------------------------------------------


async def test_popular_tags_follow_creates_updates_and_deletions(
    client: Client, admin: Account
) -> None:
    assert await popular_tags(client, admin) == {}
    one = await create_poc(client, admin, tags=["redis", "streams"])
    two = await create_poc(client, admin, tags=["redis", "kafka"])
    await create_poc(client, admin, tags=["redis"])
    assert await popular_tags(client, admin) == {"redis": 3, "streams": 1, "kafka": 1}
    resp = await update_poc(client, admin, one["pocId"], {"tags": ["kafka", "redis", "new"]})
    assert resp.status == 200, await resp.text()
    assert await popular_tags(client, admin) == {"redis": 3, "kafka": 2, "new": 1}
    resp = await update_poc(client, admin, one["pocId"], {"title": "tags unchanged"})
    assert resp.status == 200, await resp.text()
    resp = await update_poc(client, admin, two["pocId"], {"status": "archived"})
    assert resp.status == 200, await resp.text()
    assert await popular_tags(client, admin) == {"redis": 3, "kafka": 2, "new": 1}
    await delete_poc(client, admin, two["pocId"])
    assert await popular_tags(client, admin) == {"redis": 2, "kafka": 1, "new": 1}
    await delete_poc(client, admin, one["pocId"])
    assert await popular_tags(client, admin) == {"redis": 1}


async def test_popular_tags_limit(client: Client, admin: Account) -> None:
    for tags in (["a", "b", "c"], ["a", "b"], ["a"]):
        await create_poc(client, admin, tags=tags)
    data = await get_ok(client, admin, "/v1/tags/popular", {"limit": 2})
    assert data == {"tags": [{"value": "a", "count": 3}, {"value": "b", "count": 2}]}
    for bad in ("0", "101", "x"):
        resp = await client.get("/v1/tags/popular", headers=admin.auth, params={"limit": bad})
        await expect_error(resp, 400, "invalid_query")


# --- tenant isolation ------------------------------------------------------------------------


async def seed_tenant(
    client: Client, account: Account, specs: list[tuple[str, str, list[str]]]
) -> list[str]:
    """Create one POC per (title, language, tags) as ``account``; returns their ids."""
    made: list[str] = []
    for title, language, tags in specs:
        poc = await create_poc(client, account, title=title, language=language, tags=tags)
        made.append(poc["pocId"])
    return made


async def test_tenants_never_see_each_others_pocs(client: Client) -> None:
    alpha, beta = await signup(client), await signup(client)
    a_ids = await seed_tenant(
        client,
        alpha,
        [
            ("Redis streams catch-up", "Python", ["redis", "shared"]),
            ("Kafka consumer groups", "Java", ["kafka", "shared"]),
        ],
    )
    b_ids = await seed_tenant(
        client,
        beta,
        [
            ("Redis streams catch-up", "Python", ["redis", "shared"]),
            ("Redis sentinel setup", "Python", ["redis", "shared", "beta-only"]),
            ("Kafka consumer groups", "Java", ["kafka"]),
            ("Kafka streams joins", "Java", ["kafka", "shared"]),
        ],
    )
    for account, own, other in ((alpha, a_ids, b_ids), (beta, b_ids, a_ids)):
        for params in (
            {},
            {"name": "redis"},
            {"name": "stream"},
            {"q": "kafka"},
            {"tags": "shared"},
            {"language": "python"},
            {"sort": "popularity"},
        ):
            found = await search(client, account, {**params, "limit": 100})
            assert set(ids(found)) <= set(own), params
            assert not set(ids(found)) & set(other), params
            assert found["totalCount"] == len(found["pocs"]), params

    everything = await search(client, alpha)
    assert everything["totalCount"] == 2
    assert everything["facets"] == {
        "languages": [{"value": "Java", "count": 1}, {"value": "Python", "count": 1}],
        "tags": [
            {"value": "shared", "count": 2},
            {"value": "kafka", "count": 1},
            {"value": "redis", "count": 1},
        ],
    }
    assert (await search(client, alpha, {"name": "redis"}))["totalCount"] == 1
    assert (await search(client, beta, {"name": "redis"}))["totalCount"] == 2
    assert (await search(client, alpha, {"tags": "beta-only"}))["totalCount"] == 0
    assert (await search(client, alpha, {"owner": beta.user_id}))["totalCount"] == 0

    assert await popular_tags(client, alpha) == {"shared": 2, "kafka": 1, "redis": 1}
    assert await popular_tags(client, beta) == {
        "redis": 2,
        "shared": 3,
        "kafka": 2,
        "beta-only": 1,
    }
    hints = await suggest(client, alpha, {"prefix": "redis"})
    assert hints == {"titles": ["Redis streams catch-up"], "tags": ["redis"]}
    hints = await suggest(client, alpha, {"prefix": "b"})
    assert hints == {"titles": [], "tags": []}
    hints = await suggest(client, beta, {"prefix": "kafka"})
    assert hints == {"titles": ["Kafka consumer groups", "Kafka streams joins"], "tags": ["kafka"]}


async def test_favorites_of_another_tenant_do_not_change_popularity(
    client: Client, admin: Account
) -> None:
    mine = await create_poc(client, admin, title="Shared name")
    stranger = await signup(client)
    theirs = await create_poc(client, stranger, title="Shared name")
    await add_favorite(client, stranger, theirs["pocId"])
    found = await search(client, admin, {"name": "Shared name", "sort": "popularity"})
    assert ids(found) == [mine["pocId"]]
    assert found["pocs"][0]["metrics"]["favorites"] == 0
