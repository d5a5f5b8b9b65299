"""Search on OpenSearch, for when one PostgreSQL should stop answering every search.

Documents are written only through the transactional outbox (``core/search/outbox.py``), so
an OpenSearch outage delays the index and loses nothing. Every query carries a tenant filter
and routes to the tenant's shard. The index is reached through an alias, so ``pocdojo
reindex`` can build a fresh index and swap it in without a gap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pocdojo.core.db.pocs import Poc
from pocdojo.core.errors import Unavailable
from pocdojo.core.search import (
    FACET_LANGUAGES,
    FACET_TAGS,
    FacetCount,
    PocHit,
    PocQuery,
    SearchPage,
    Suggestions,
)

INDEX_ALIAS = "pocdojo-pocs"
# No typo forgiven below 4 characters (as in the PostgreSQL adapter), one up to 5, then two;
# never in the first letter. Two adjacent letters swapped are one edit (Lucene's optimal
# string alignment), as the PostgreSQL adapter counts them too.
FUZZINESS = "AUTO:4,6"

# Per seed 001's POC index, with the fields this API searches on: an n-gram subfield for
# partial names, search-as-you-type for suggestions, english analysis for full text.
INDEX_BODY: dict[str, Any] = {
    "settings": {
        "index": {"number_of_shards": 3, "number_of_replicas": 1, "max_ngram_diff": 1},
        "analysis": {
            "tokenizer": {
                "trigram": {"type": "ngram", "min_gram": 3, "max_gram": 4,
                            "token_chars": ["letter", "digit"]},
            },
            "analyzer": {
                "partial": {"type": "custom", "tokenizer": "trigram",
                            "filter": ["lowercase", "asciifolding"]},
            },
            "normalizer": {"lower": {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
        },
    },
    "mappings": {
        "dynamic": "strict",
        "properties": {
            "poc_id": {"type": "keyword"},
            "tenant_id": {"type": "keyword"},
            "user_id": {"type": "keyword"},
            "title": {
                "type": "text",
                "analyzer": "english",
                "fields": {
                    "keyword": {"type": "keyword", "normalizer": "lower"},
                    "partial": {"type": "text", "analyzer": "partial"},
                    "suggest": {"type": "search_as_you_type"},
                    "raw": {"type": "keyword"},
                },
            },
            "description": {"type": "text", "analyzer": "english"},
            "documentation": {"type": "text", "analyzer": "english"},
            "language": {"type": "keyword"},
            "tags": {"type": "keyword"},
            "status": {"type": "keyword"},
            "created_at": {"type": "date"},
            "views": {"type": "long"},
            "favorites": {"type": "integer"},
        },
    },
}  # fmt: skip


def document(poc: Poc) -> dict[str, Any]:
    """The indexed form of a POC."""
    return {
        "poc_id": str(poc.id),
        "tenant_id": str(poc.tenant_id),
        "user_id": str(poc.user_id),
        "title": poc.title,
        "description": poc.description,
        "documentation": poc.documentation or "",
        "language": poc.language,
        "tags": poc.tags,
        "status": poc.status,
        "created_at": poc.created_at.isoformat(),
        "views": poc.view_count,
        "favorites": poc.favorite_count,
    }


def bulk_actions(pocs: Iterable[Poc], index: str = INDEX_ALIAS) -> list[dict[str, Any]]:
    """Index live POCs, delete deleted ones; routed by tenant."""
    actions: list[dict[str, Any]] = []
    for poc in pocs:
        base = {"_index": index, "_id": str(poc.id), "_routing": str(poc.tenant_id)}
        if poc.status == "deleted":
            actions.append({**base, "_op_type": "delete"})
        else:
            actions.append({**base, "_op_type": "index", "_source": document(poc)})
    return actions


def _tenant_filter(tenant_id: UUID) -> list[dict[str, Any]]:
    return [
        {"term": {"tenant_id": str(tenant_id)}},
        {"bool": {"must_not": {"term": {"status": "deleted"}}}},
    ]


def build_search(tenant_id: UUID, query: PocQuery) -> dict[str, Any]:
    """The request body that answers ``query`` (hits, total and both facets)."""
    filters = _tenant_filter(tenant_id)
    must: list[dict[str, Any]] = []
    if query.name:
        must.append(
            {
                "bool": {
                    "should": [
                        {"match": {"title.partial": {"query": query.name, "operator": "and"}}},
                        {
                            "match": {
                                "title": {
                                    "query": query.name,
                                    "fuzziness": FUZZINESS,
                                    "prefix_length": 1,
                                    "fuzzy_transpositions": True,
                                    "operator": "and",
                                }
                            }
                        },
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    if query.q:
        must.append(
            {
                "multi_match": {
                    "query": query.q,
                    "fields": ["title^3", "description^2", "documentation"],
                    "operator": "and",
                }
            }
        )
    if query.language:
        filters.append({"term": {"language": query.language}})
    if query.tags:
        if query.tags_mode == "any":
            filters.append({"terms": {"tags": list(query.tags)}})
        else:
            filters.extend({"term": {"tags": tag}} for tag in query.tags)
    if query.owner:
        filters.append({"term": {"user_id": str(query.owner)}})
    if query.status:
        filters.append({"term": {"status": query.status}})
    if query.created_from or query.created_to:
        bounds: dict[str, str] = {}
        if query.created_from:
            bounds["gte"] = query.created_from.isoformat()
        if query.created_to:
            bounds["lt"] = query.created_to.isoformat()
        filters.append({"range": {"created_at": bounds}})
    newest = [{"created_at": "desc"}, {"poc_id": "desc"}]
    sort: list[Any] = {
        "created": newest,
        "title": [{"title.keyword": "asc"}, {"poc_id": "asc"}],
        "popularity": [{"favorites": "desc"}, {"views": "desc"}, *newest],
        "relevance": ["_score", *newest] if (query.name or query.q) else newest,
    }[query.sort]
    return {
        "query": {"bool": {"filter": filters, "must": must}},
        "sort": sort,
        "from": query.offset,
        "size": query.limit,
        "track_total_hits": True,
        "aggs": {
            "languages": {"terms": {"field": "language", "size": FACET_LANGUAGES}},
            "tags": {"terms": {"field": "tags", "size": FACET_TAGS}},
        },
    }


def build_suggest(tenant_id: UUID, prefix: str, limit: int) -> dict[str, Any]:
    """Titles completing ``prefix`` (by word), and tags starting with it."""
    return {
        "query": {
            "bool": {
                "filter": _tenant_filter(tenant_id),
                "must": [
                    {
                        "multi_match": {
                            "query": prefix,
                            "type": "bool_prefix",
                            "fields": [
                                "title.suggest",
                                "title.suggest._2gram",
                                "title.suggest._3gram",
                            ],
                        }
                    }
                ],
            }
        },
        "sort": [{"favorites": "desc"}, {"views": "desc"}, {"title.keyword": "asc"}],
        # One hit per distinct title, so shared titles do not crowd out others.
        "collapse": {"field": "title.raw"},
        "size": limit,
        "_source": ["title"],
        "aggs": {
            "tags": {
                "filter": {"prefix": {"tags": prefix.strip().lower()}},
                "aggs": {
                    "values": {
                        "terms": {
                            "field": "tags",
                            "size": limit,
                            "include": re.escape(prefix.strip().lower()) + ".*",
                        }
                    }
                },
            }
        },
    }


def build_popular(tenant_id: UUID, limit: int) -> dict[str, Any]:
    """The tenant's most used tags."""
    return {
        "query": {"bool": {"filter": _tenant_filter(tenant_id)}},
        "size": 0,
        "aggs": {"tags": {"terms": {"field": "tags", "size": limit}}},
    }


def _buckets(aggregation: dict[str, Any]) -> list[FacetCount]:
    return [FacetCount(b["key"], b["doc_count"]) for b in aggregation["buckets"]]


class OpenSearchSearch:
    """The search port on an OpenSearch cluster (``opensearchpy.AsyncOpenSearch``)."""

    def __init__(self, client: Any, index: str = INDEX_ALIAS) -> None:
        self.client = client
        self.index = index

    async def _query(self, tenant_id: UUID, body: dict[str, Any]) -> dict[str, Any]:
        from opensearchpy.exceptions import OpenSearchException

        try:
            result: dict[str, Any] = await self.client.search(
                index=self.index, body=body, routing=str(tenant_id)
            )
        except OpenSearchException as exc:
            raise Unavailable("search is unavailable; try again shortly") from exc
        return result

    async def search(self, conn: Any, tenant_id: UUID, query: PocQuery) -> SearchPage:
        result = await self._query(tenant_id, build_search(tenant_id, query))
        return SearchPage(
            hits=[PocHit.from_document(h["_source"]) for h in result["hits"]["hits"]],
            total=result["hits"]["total"]["value"],
            languages=_buckets(result["aggregations"]["languages"]),
            tags=_buckets(result["aggregations"]["tags"]),
        )

    async def suggest(self, conn: Any, tenant_id: UUID, prefix: str, limit: int) -> Suggestions:
        result = await self._query(tenant_id, build_suggest(tenant_id, prefix, limit))
        titles = [h["_source"]["title"] for h in result["hits"]["hits"]]
        tags = [b["key"] for b in result["aggregations"]["tags"]["values"]["buckets"]]
        return Suggestions(titles=titles, tags=tags)

    async def popular_tags(self, conn: Any, tenant_id: UUID, limit: int) -> list[FacetCount]:
        result = await self._query(tenant_id, build_popular(tenant_id, limit))
        return _buckets(result["aggregations"]["tags"])

    async def apply(self, pocs: list[Poc]) -> None:
        """Bring the index in line with these POCs' current state.

        Raises:
            opensearchpy exceptions: the cluster refused or could not be reached.
        """
        from opensearchpy.helpers import async_bulk

        actions = bulk_actions(pocs, self.index)
        if actions:
            # A delete of a document that was never indexed is not an error.
            await async_bulk(self.client, actions, raise_on_error=True, ignore_status=(404,))

    async def refresh(self) -> None:
        """Make everything written so far searchable (tests and reindex)."""
        await self.client.indices.refresh(index=self.index)


def connect(url: str) -> Any:
    """An async client for the cluster at ``url``."""
    from opensearchpy import AsyncOpenSearch

    return AsyncOpenSearch(hosts=[url], timeout=10, max_retries=2, retry_on_timeout=True)


async def ensure_index(client: Any, alias: str = INDEX_ALIAS) -> bool:
    """Create the first index behind ``alias`` if there is none; True if it was created."""
    if await client.indices.exists_alias(name=alias):
        return False
    await client.indices.create(index=f"{alias}-1", body={**INDEX_BODY, "aliases": {alias: {}}})
    return True


async def swap_alias(client: Any, new_index: str, alias: str = INDEX_ALIAS) -> list[str]:
    """Point ``alias`` at ``new_index`` in one step; returns the indexes it left."""
    old: list[str] = []
    if await client.indices.exists_alias(name=alias):
        old = list((await client.indices.get_alias(name=alias)).keys())
    actions: list[dict[str, Any]] = [{"add": {"index": new_index, "alias": alias}}]
    actions += [{"remove": {"index": index, "alias": alias}} for index in old]
    await client.indices.update_aliases(body={"actions": actions})
    return old
