"""The search port's contract, run against every engine adapter.

PostgreSQL always runs. OpenSearch runs when ``OPENSEARCH_URL`` names a cluster (and its
adapter module exists); the same assertions then hold for it. POCs are seeded through the REST
API (and a few columns set with SQL), then handed to the engine: PostgreSQL sees them at once,
OpenSearch after they are indexed and the index refreshed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from pocdojo.core.db import open_pool, tenant_tx
from pocdojo.core.db import pocs as pocs_db
from pocdojo.core.search import FacetCount, PocQuery, SearchEngine, SearchPage, Suggestions
from pocdojo.core.search.postgres import PostgresSearch
from tests.conftest import Engines
from tests.helpers import Account, register, signup
from tests.poc_helpers import (
    Client,
    add_favorite,
    create_poc,
    delete_poc,
    facet_counts,
    owner_execute,
    update_poc,
)

Sync = Callable[[Any, list[UUID]], Awaitable[None]]


@dataclass
class Adapter:
    """An engine, and how to bring it up to date with the database's POCs."""

    name: str
    engine: SearchEngine
    sync: Sync


async def _nothing_to_sync(pool: Any, tenants: list[UUID]) -> None:
    """PostgreSQL searches the rows themselves."""


@pytest.fixture
async def pool(engines: Engines) -> AsyncIterator[Any]:
    """An application pool, like the server's (row-level security applies)."""
    opened = await open_pool(engines.database_url, engines.database_app_url)
    yield opened
    await opened.close()


@pytest.fixture(params=["postgres", "opensearch"])
async def adapter(request: pytest.FixtureRequest) -> AsyncIterator[Adapter]:
    if request.param == "postgres":
        yield Adapter("postgres", PostgresSearch(), _nothing_to_sync)
        return
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        pytest.skip("OPENSEARCH_URL not set")
    try:
        module: Any = importlib.import_module("pocdojo.core.search.opensearch")
    except ImportError as exc:
        pytest.skip(f"OpenSearch adapter not available: {exc}")
    client = module.connect(url)
    await module.ensure_index(client)
    engine = module.OpenSearchSearch(client)

    async def sync(pool: Any, tenants: list[UUID]) -> None:
        pocs: list[pocs_db.Poc] = []
        for tenant_id in tenants:
            async with tenant_tx(pool, tenant_id) as conn:
                rows = await conn.fetch(f"SELECT {pocs_db.COLUMNS} FROM pocs")  # noqa: S608
                pocs += [pocs_db.to_poc(r) for r in rows]
        await engine.apply(pocs)
        await engine.refresh()

    try:
        yield Adapter("opensearch", engine, sync)
    finally:
        await client.close()


# --- a seeded world --------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    key: str
    title: str
    language: str
    tags: tuple[str, ...]
    description: str
    documentation: str | None
    created: datetime
    by_bob: bool = False


ALPHA = (
    Spec("redis", "Redis streams catch-up", "Python", ("redis", "streams", "messaging"),
         "Consumers resume after downtime", "Replay entries from the last acknowledged id.",
         datetime(2024, 1, 10, 12, tzinfo=UTC)),
    Spec("kafka", "Kafka consumer groups", "Java", ("kafka", "messaging"),
         "Rebalancing consumers in a group", None,
         datetime(2024, 2, 10, 12, tzinfo=UTC), by_bob=True),
    Spec("postgres", "Postgres logical replication", "Go", ("postgres", "replication"),
         "Ship changes to a second cluster", "Set up a publication and a subscription.",
         datetime(2024, 3, 10, 12, tzinfo=UTC), by_bob=True),
    Spec("async", "async runtime in Rust", "Rust", ("rust", "async"),
         "A tiny executor with wakers", None,
         datetime(2024, 4, 10, 12, tzinfo=UTC)),
    Spec("queues", "Python asyncio queues", "Python", ("python", "async", "messaging"),
         "Producer and consumer with asyncio", None,
         datetime(2024, 5, 10, 12, tzinfo=UTC)),
)  # fmt: skip

# Another tenant with the same words everywhere, and more of them.
BETA = (
    *(Spec(f"b-{s.key}", s.title, s.language, s.tags, s.description, s.documentation, s.created)
      for s in ALPHA),
    Spec("b-sentinel", "Redis sentinel setup", "Python", ("redis", "messaging", "beta-only"),
         "Failover for consumers", None, datetime(2024, 6, 1, tzinfo=UTC)),
    Spec("b-rebalance", "Rebalancing Kafka streams", "Java", ("kafka", "streams"),
         "Consumer rebalancing", None, datetime(2024, 6, 2, tzinfo=UTC)),
)  # fmt: skip


@dataclass
class World:
    adapter: Adapter
    pool: Any
    alpha: Account
    bob: Account
    beta: Account
    ids: dict[str, str]
    specs: dict[str, Spec]

    @property
    def engine(self) -> SearchEngine:
        return self.adapter.engine

    async def sync(self) -> None:
        await self.adapter.sync(self.pool, [UUID(self.alpha.tenant_id), UUID(self.beta.tenant_id)])

    async def search(self, account: Account, **fields: Any) -> SearchPage:
        tenant = UUID(account.tenant_id)
        async with tenant_tx(self.pool, tenant) as conn:
            return await self.engine.search(conn, tenant, PocQuery(**fields))

    async def suggest(self, account: Account, prefix: str, limit: int = 10) -> Suggestions:
        tenant = UUID(account.tenant_id)
        async with tenant_tx(self.pool, tenant) as conn:
            return await self.engine.suggest(conn, tenant, prefix, limit)

    async def popular(self, account: Account, limit: int = 100) -> list[FacetCount]:
        tenant = UUID(account.tenant_id)
        async with tenant_tx(self.pool, tenant) as conn:
            return await self.engine.popular_tags(conn, tenant, limit)

    def keys(self, page: SearchPage) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[str(h.poc_id)] for h in page.hits]

    def keyset(self, page: SearchPage) -> set[str]:
        return set(self.keys(page))


@pytest.fixture
async def world(client: Client, engines: Engines, pool: Any, adapter: Adapter) -> World:
    alpha, beta = await signup(client), await signup(client)
    bob = await register(client, alpha)
    ids: dict[str, str] = {}
    specs: dict[str, Spec] = {}
    for account, seeds in ((alpha, ALPHA), (beta, BETA)):
        for spec in seeds:
            owner = bob if spec.by_bob else account
            poc = await create_poc(
                client,
                owner,
                title=spec.title,
                language=spec.language,
                tags=list(spec.tags),
                description=spec.description,
                documentation=spec.documentation,
            )
            ids[spec.key], specs[spec.key] = poc["pocId"], spec
            await owner_execute(
                engines.database_url,
                "UPDATE pocs SET created_at = $2 WHERE id = $1::uuid",
                poc["pocId"],
                spec.created,
            )
    world = World(adapter, pool, alpha, bob, beta, ids, specs)
    await world.sync()
    return world


def facets_of(world: World, keys: set[str]) -> tuple[list[FacetCount], list[FacetCount]]:
    """The language and tag facets expected for these POCs."""
    specs = [world.specs[k] for k in keys]

    def as_counts(values: list[str]) -> list[FacetCount]:
        return [FacetCount(f["value"], f["count"]) for f in facet_counts(values)]

    return (
        as_counts([s.language for s in specs]),
        as_counts([t for s in specs for t in s.tags]),
    )


ALPHA_KEYS = {s.key for s in ALPHA}


# --- search ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ALPHA_KEYS),
        ({"name": "stream"}, {"redis"}),
        ({"name": "Redis Streams"}, {"redis"}),
        ({"language": "Python"}, {"redis", "queues"}),
        ({"tags": ("redis", "kafka")}, {"redis", "kafka"}),
        ({"tags": ("messaging", "async"), "tags_mode": "all"}, {"queues"}),
        ({"q": "replaying"}, {"redis"}),
        ({"q": "executors"}, {"async"}),
        ({"q": "subscriptions"}, {"postgres"}),
        ({"created_from": datetime(2024, 2, 15, tzinfo=UTC),
          "created_to": datetime(2024, 4, 15, tzinfo=UTC)}, {"postgres", "async"}),
        ({"language": "Python", "tags": ("messaging",), "q": "consumer",
          "created_from": datetime(2024, 3, 1, tzinfo=UTC)}, {"queues"}),
        ({"status": "archived"}, set()),
        ({"name": "zebra"}, set()),
    ],
)  # fmt: skip
async def test_search_filters(world: World, fields: dict[str, Any], expected: set[str]) -> None:
    page = await world.search(world.alpha, limit=100, **fields)
    assert world.keyset(page) == expected
    assert page.total == len(expected)
    languages, tags = facets_of(world, expected)
    assert (page.languages, page.tags) == (languages, tags)


async def test_search_tolerates_a_typo_in_the_name(world: World) -> None:
    found = world.keyset(await world.search(world.alpha, name="stremas"))
    assert "redis" in found
    assert not found & {"kafka", "async"}


async def test_search_counts_a_swap_of_adjacent_letters_as_one_edit(
    client: Client, world: World
) -> None:
    # OpenSearch's fuzziness counts a transposition as one edit (optimal string alignment),
    # and never touches the first letter (prefix_length 1).
    streams = await create_poc(client, world.alpha, title="Kafka Streams POC")
    world.ids["streams-poc"] = streams["pocId"]
    await world.sync()

    for name in ("kafak", "Kafak", "kfaka"):  # one swap, five letters
        assert world.keyset(await world.search(world.alpha, name=name)) == {
            "kafka",
            "streams-poc",
        }, name
    assert world.keyset(await world.search(world.alpha, name="akfka")) == set()
    # From six letters on, two edits: two swaps, or a swap and an inserted letter.
    for name in ("pyhtno", "pyhtonn"):
        assert world.keyset(await world.search(world.alpha, name=name)) == {"queues"}, name
    assert world.keyset(await world.search(world.alpha, name="pyhtnoo")) == set()


async def test_search_by_owner(world: World) -> None:
    page = await world.search(world.alpha, owner=UUID(world.bob.user_id))
    assert world.keyset(page) == {"kafka", "postgres"}


async def test_search_hits_carry_the_poc(world: World) -> None:
    (hit,) = (await world.search(world.alpha, name="Kafka consumer groups")).hits
    assert (hit.title, hit.description, hit.language, hit.tags, hit.status) == (
        "Kafka consumer groups",
        "Rebalancing consumers in a group",
        "Java",
        ["kafka", "messaging"],
        "active",
    )
    assert hit.user_id == UUID(world.bob.user_id)
    assert hit.created_at == datetime(2024, 2, 10, 12, tzinfo=UTC)
    assert (hit.views, hit.favorites) == (0, 0)


async def test_sorts(client: Client, engines: Engines, world: World) -> None:
    newest = sorted(ALPHA, key=lambda s: s.created, reverse=True)
    page = await world.search(world.alpha, sort="created")
    assert world.keys(page) == [s.key for s in newest]
    page = await world.search(world.alpha, sort="title")
    assert [h.title for h in page.hits] == sorted((s.title for s in ALPHA), key=str.lower)

    carol = await register(client, world.alpha)
    for fan, key in ((world.alpha, "postgres"), (carol, "postgres"), (world.alpha, "kafka")):
        await add_favorite(client, fan, world.ids[key])
    await add_favorite(client, carol, world.ids["queues"])
    for key, views in {"kafka": 50, "queues": 10, "redis": 1000}.items():
        await owner_execute(
            engines.database_url,
            "UPDATE pocs SET view_count = $2 WHERE id = $1::uuid",
            world.ids[key],
            views,
        )
    await world.sync()
    page = await world.search(world.alpha, sort="popularity")
    assert world.keys(page) == ["postgres", "kafka", "queues", "redis", "async"]
    assert [(h.favorites, h.views) for h in page.hits] == [
        (2, 0),
        (1, 50),
        (1, 10),
        (0, 1000),
        (0, 0),
    ]


async def test_relevance_puts_title_matches_first(world: World) -> None:
    page = await world.search(world.alpha, q="consumer", sort="relevance")
    assert world.keyset(page) == {"redis", "kafka", "queues"}
    assert world.keys(page)[0] == "kafka"  # the only one with it in the title


async def test_paging(world: World) -> None:
    newest = [s.key for s in sorted(ALPHA, key=lambda s: s.created, reverse=True)]
    pages = [await world.search(world.alpha, sort="created", limit=2, page=n) for n in (1, 2, 3)]
    assert [world.keys(p) for p in pages] == [newest[0:2], newest[2:4], newest[4:]]
    assert {p.total for p in pages} == {5}
    beyond = await world.search(world.alpha, limit=2, page=4)
    assert (beyond.hits, beyond.total) == ([], 5)
    # Facets describe the whole filtered set, not the page.
    assert (pages[2].languages, pages[2].tags) == facets_of(world, ALPHA_KEYS)


async def test_deleted_and_changed_pocs(client: Client, world: World) -> None:
    await delete_poc(client, world.alpha, world.ids["redis"])
    resp = await update_poc(
        client, world.alpha, world.ids["queues"], {"tags": ["python", "queues"]}
    )
    assert resp.status == 200, await resp.text()
    await world.sync()
    assert world.keyset(await world.search(world.alpha, name="stream")) == set()
    page = await world.search(world.alpha, tags=("messaging",))
    assert world.keyset(page) == {"kafka"}
    assert page.tags == [FacetCount("kafka", 1), FacetCount("messaging", 1)]
    assert (await world.suggest(world.alpha, "redis")).titles == []
    popular = {f.value: f.count for f in await world.popular(world.alpha)}
    assert popular == {
        "kafka": 1,
        "messaging": 1,
        "postgres": 1,
        "replication": 1,
        "rust": 1,
        "async": 1,
        "python": 1,
        "queues": 1,
    }


# --- suggestions and popular tags ------------------------------------------------------------


async def test_suggest_titles_and_tags(client: Client, world: World) -> None:
    extra = await create_poc(
        client, world.alpha, title="Building with redis", tags=["redis", "reduce"]
    )
    world.ids["extra"] = extra["pocId"]
    await add_favorite(client, world.bob, extra["pocId"])
    await world.sync()
    found = await world.suggest(world.alpha, "red")
    assert found.titles == ["Building with redis", "Redis streams catch-up"]
    assert found.tags == ["redis", "reduce"]  # redis: 2 POCs, reduce: 1
    assert (await world.suggest(world.alpha, "RED", limit=1)).titles == ["Building with redis"]
    assert (await world.suggest(world.alpha, "rep")).tags == ["replication"]
    assert (await world.suggest(world.alpha, "stre")).titles == ["Redis streams catch-up"]
    assert (await world.suggest(world.alpha, "zzz")) == Suggestions(titles=[], tags=[])


async def test_suggest_titles_are_distinct_and_fill_the_limit(client: Client, world: World) -> None:
    # Two more POCs share the most popular title: a title is suggested once, and the limit
    # still brings that many distinct titles.
    for _ in range(2):
        twin = await create_poc(client, world.alpha, title="Redis streams catch-up")
        await add_favorite(client, world.bob, twin["pocId"])
    await create_poc(client, world.alpha, title="Redis cluster failover")
    await world.sync()
    found = await world.suggest(world.alpha, "redis", limit=2)
    assert found.titles == ["Redis streams catch-up", "Redis cluster failover"]


async def test_popular_tags_exact(world: World) -> None:
    expected = [
        FacetCount(f["value"], f["count"]) for f in facet_counts(t for s in ALPHA for t in s.tags)
    ]
    assert await world.popular(world.alpha) == expected
    assert await world.popular(world.alpha, limit=2) == expected[:2]


# --- tenant isolation ------------------------------------------------------------------------


async def test_tenants_are_isolated(world: World) -> None:
    beta_keys = {s.key for s in BETA}
    for account, own in ((world.alpha, ALPHA_KEYS), (world.beta, beta_keys)):
        for fields in (
            {},
            {"name": "redis"},
            {"q": "consumer"},
            {"tags": ("messaging",)},
            {"language": "Python"},
            {"sort": "popularity"},
        ):
            page = await world.search(account, limit=100, **fields)
            assert world.keyset(page) <= own, fields
            assert page.total == len(page.hits), fields
            assert (page.languages, page.tags) == facets_of(world, world.keyset(page)), fields

    assert (await world.search(world.alpha)).total == 5
    assert (await world.search(world.beta)).total == 7
    assert (await world.search(world.alpha, tags=("beta-only",))).total == 0
    assert (await world.search(world.alpha, owner=UUID(world.beta.user_id))).total == 0

    alpha_tags = {f.value: f.count for f in await world.popular(world.alpha)}
    beta_tags = {f.value: f.count for f in await world.popular(world.beta)}
    assert (alpha_tags["redis"], alpha_tags["messaging"], alpha_tags["streams"]) == (1, 3, 1)
    assert (beta_tags["redis"], beta_tags["messaging"], beta_tags["streams"]) == (2, 4, 2)
    assert "beta-only" not in alpha_tags

    hints = await world.suggest(world.alpha, "red")
    assert (hints.titles, hints.tags) == (["Redis streams catch-up"], ["redis"])
    hints = await world.suggest(world.beta, "red")
    assert (hints.titles, hints.tags) == (
        ["Redis sentinel setup", "Redis streams catch-up"],
        ["redis"],
    )
    hints = await world.suggest(world.alpha, "reb")
    assert (hints.titles, hints.tags) == ([], [])
    assert (await world.suggest(world.alpha, "beta")).tags == []
