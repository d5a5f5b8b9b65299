"""The search port: one query model, two engines (PostgreSQL by default, OpenSearch at scale).

Both adapters pass the same contract suite (``tests/core/test_search_contract.py``). Every
method takes the tenant explicitly and never returns another tenant's POCs, counts or tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

Sort = Literal["relevance", "created", "title", "popularity"]
TagsMode = Literal["any", "all"]


@dataclass(frozen=True)
class PocQuery:
    """What a search asks for; every filter is optional and they combine with AND."""

    name: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    tags_mode: TagsMode = "any"
    q: str | None = None
    owner: UUID | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    sort: Sort = "relevance"
    page: int = 1
    limit: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


@dataclass(frozen=True)
class PocHit:
    poc_id: UUID
    title: str
    description: str
    language: str
    tags: list[str]
    user_id: UUID
    status: str
    created_at: datetime
    views: int
    favorites: int

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> PocHit:
        """A hit from its JSON form (the same in both engines' answers)."""
        return cls(
            poc_id=UUID(doc["poc_id"]),
            title=doc["title"],
            description=doc["description"],
            language=doc["language"],
            tags=doc["tags"],
            user_id=UUID(doc["user_id"]),
            status=doc["status"],
            created_at=datetime.fromisoformat(doc["created_at"]),
            views=doc["views"],
            favorites=doc["favorites"],
        )


@dataclass(frozen=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True)
class SearchPage:
    hits: list[PocHit]
    total: int
    languages: list[FacetCount] = field(default_factory=list)
    tags: list[FacetCount] = field(default_factory=list)


@dataclass(frozen=True)
class Suggestions:
    titles: list[str]
    tags: list[str]


class SearchEngine(Protocol):
    """Finds a tenant's live POCs."""

    async def search(self, conn: Any, tenant_id: UUID, query: PocQuery) -> SearchPage:
        """One page of hits, the total, and facets by language and tag under the filters."""
        ...

    async def suggest(self, conn: Any, tenant_id: UUID, prefix: str, limit: int) -> Suggestions:
        """Titles and tags that complete ``prefix``, most popular first."""
        ...

    async def popular_tags(self, conn: Any, tenant_id: UUID, limit: int) -> list[FacetCount]:
        """The tenant's most used tags on live POCs."""
        ...


FACET_LANGUAGES = 20
FACET_TAGS = 30
