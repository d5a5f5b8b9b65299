"""The OpenSearch adapter's mapping and query building (no cluster needed)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pocdojo.core.db.pocs import Poc
from pocdojo.core.search import PocQuery
from pocdojo.core.search.opensearch import (
    INDEX_ALIAS,
    INDEX_BODY,
    build_popular,
    build_search,
    build_suggest,
    bulk_actions,
    document,
)

TENANT = uuid.uuid4()


def _filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = body["query"]["bool"]["filter"]
    return filters


def _poc(**changes: Any) -> Poc:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": TENANT,
        "user_id": uuid.uuid4(),
        "title": "Redis streams",
        "description": "catch-up",
        "language": "Python",
        "tags": ["redis"],
        "repository_url": None,
        "documentation": None,
        "status": "active",
        "view_count": 3,
        "favorite_count": 1,
        "created_at": datetime(2026, 1, 2, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 2, tzinfo=UTC),
    }
    fields.update(changes)
    return Poc(**fields)


def test_every_query_is_confined_to_the_tenant_and_live_pocs() -> None:
    for body in (
        build_search(TENANT, PocQuery()),
        build_search(TENANT, PocQuery(name="x", q="y", tags=("a",))),
        build_suggest(TENANT, "re", 5),
        build_popular(TENANT, 5),
    ):
        filters = _filters(body)
        assert {"term": {"tenant_id": str(TENANT)}} in filters
        assert {"bool": {"must_not": {"term": {"status": "deleted"}}}} in filters


def test_filters_map_to_terms_and_ranges() -> None:
    owner = uuid.uuid4()
    body = build_search(
        TENANT,
        PocQuery(
            language="Go",
            tags=("a", "b"),
            tags_mode="all",
            owner=owner,
            created_from=datetime(2026, 1, 1, tzinfo=UTC),
            created_to=datetime(2026, 2, 1, tzinfo=UTC),
            page=3,
            limit=10,
        ),
    )
    filters = _filters(body)
    assert {"term": {"language": "Go"}} in filters
    assert {"term": {"tags": "a"}} in filters
    assert {"term": {"tags": "b"}} in filters
    assert {"term": {"user_id": str(owner)}} in filters
    assert {"range": {"created_at": {"gte": "2026-01-01T00:00:00+00:00",
                                     "lt": "2026-02-01T00:00:00+00:00"}}} in filters  # fmt: skip
    assert (body["from"], body["size"]) == (20, 10)
    assert body["track_total_hits"] is True
    assert set(body["aggs"]) == {"languages", "tags"}


def test_any_of_tags_is_one_terms_filter() -> None:
    filters = _filters(build_search(TENANT, PocQuery(tags=("a", "b"))))
    assert {"terms": {"tags": ["a", "b"]}} in filters


def test_name_is_partial_or_fuzzy_and_sort_follows_request() -> None:
    body = build_search(TENANT, PocQuery(name="stremas", sort="relevance"))
    should = body["query"]["bool"]["must"][0]["bool"]["should"]
    assert any("title.partial" in clause["match"] for clause in should)
    fuzzy = [c["match"]["title"] for c in should if "title" in c["match"]]
    # Every word of the name, each within the edits AUTO:4,6 allows, a swap of two adjacent
    # letters being one, and with its first letter right (as in PostgreSQL).
    assert fuzzy == [
        {
            "query": "stremas",
            "fuzziness": "AUTO:4,6",
            "prefix_length": 1,
            "fuzzy_transpositions": True,
            "operator": "and",
        }
    ]
    assert body["sort"][0] == "_score"
    assert build_search(TENANT, PocQuery(sort="title"))["sort"][0] == {"title.keyword": "asc"}
    assert build_search(TENANT, PocQuery(sort="popularity"))["sort"][0] == {"favorites": "desc"}
    # Without a text criterion "relevance" means newest first.
    assert build_search(TENANT, PocQuery())["sort"][0] == {"created_at": "desc"}


def test_suggest_escapes_the_tag_prefix_regex() -> None:
    body = build_suggest(TENANT, "c++", 5)
    include = body["aggs"]["tags"]["aggs"]["values"]["terms"]["include"]
    assert include == r"c\+\+.*"


def test_mapping_covers_every_indexed_field_and_is_strict() -> None:
    poc = _poc()
    properties = INDEX_BODY["mappings"]["properties"]
    assert INDEX_BODY["mappings"]["dynamic"] == "strict"
    assert set(document(poc)) == set(properties)
    assert properties["tenant_id"]["type"] == "keyword"
    json.dumps(INDEX_BODY)  # the body must be serializable as sent


def test_bulk_actions_index_live_and_delete_deleted_routed_by_tenant() -> None:
    live, gone = _poc(), _poc(status="deleted")
    actions = bulk_actions([live, gone])
    assert actions[0]["_op_type"] == "index"
    assert actions[0]["_source"]["title"] == "Redis streams"
    assert actions[1]["_op_type"] == "delete"
    assert "_source" not in actions[1]
    assert {a["_routing"] for a in actions} == {str(TENANT)}
    assert {a["_index"] for a in actions} == {INDEX_ALIAS}
