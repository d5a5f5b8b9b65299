"""Search on PostgreSQL: tsvector + GIN for full text, pg_trgm for partial names, the
tenant's title words and their edit distance for misspelled ones, GIN on tags; facets
computed over the same filtered set in the same statement.

Queries read the ``pocs_scoped`` and ``poc_tags_scoped`` views, which confine every statement
to the transaction's tenant the way the row-level policies do, but let the planner use the
GIN indexes (migration 0004 says why the policies alone cannot). The explicit ``tenant_id``
condition is there too so the tenant-leading indexes are chosen.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from pocdojo.core.search import (
    FACET_LANGUAGES,
    FACET_TAGS,
    FacetCount,
    PocHit,
    PocQuery,
    SearchPage,
    Suggestions,
)

_TSQUERY = "websearch_to_tsquery('english', {})"
# Words of a name this long or longer also find misspelled title words, as OpenSearch's
# fuzziness AUTO:4,6 with prefix_length 1 does: within one edit up to 5 letters, two from 6
# on, never in the first letter (migration 0009). An edit is a letter inserted, deleted or
# replaced, or two adjacent letters swapped, and no letter is edited twice (Lucene's optimal
# string alignment). Shorter words are too short to tell a typo from another word.
TYPO_MIN_LENGTH = 4

# Per word of the name, computed once: its edits, and what swapping two adjacent letters
# (never the first) makes of it. For each swap: the word swapped, its head (the word up to
# the swapped pair) and its tail reversed (the pair and what follows it).
_SWAPS = """
    SELECT CASE WHEN length(t.term) >= 6 THEN 2 ELSE 1 END AS edits,
           array_agg(s.swap) AS swaps,
           array_agg(left(s.swap, i + 1)) AS heads,
           array_agg(reverse(substr(s.swap, i))) AS rtails
    FROM generate_series(2, length(t.term) - 1) AS i
    CROSS JOIN LATERAL (
        SELECT left(t.term, i - 1) || substr(t.term, i + 1, 1) || substr(t.term, i, 1)
               || substr(t.term, i + 2) AS swap) s
    WHERE substr(t.term, i, 1) <> substr(t.term, i + 1, 1)"""

# A title word one swap and one more edit away: it starts with a swap's head and is one
# edit from that swap after it, or ends with a swap's tail and is one edit from it before.
_SWAPPED_AND_EDITED = """EXISTS (
                  SELECT FROM unnest(e.swaps, e.heads, e.rtails) AS s (swap, head, rtail)
                  WHERE levenshtein_less_equal(w.word, s.swap, 1) <= 1
                    AND (w.word ^@ s.head OR reverse(w.word) ^@ s.rtail))"""

# A title word two swaps away: as long as the name word, starting with a swap's head,
# ending with a swap's tail, and differing from it in four letters at most (Levenshtein's
# distance with insertions and deletions costing more than that counts replaced letters).
_SWAPPED_TWICE = """(length(w.word) = length(t.term)
                AND levenshtein_less_equal(w.word, t.term, 9, 9, 1, 4) <= 4
                AND w.word ^@ ANY(e.heads) AND reverse(w.word) ^@ ANY(e.rtails))"""

# The tenant's title words (migration 0008) within a name word's edits, among those of its
# initial and length (migration 0009). Levenshtein's distance (fuzzystrmatch, in C) counts
# a swap as two edits, so a word within reach only by swapping is one to two Levenshtein
# edits further than allowed; only the few words that far are compared with the swaps.
_CLOSE_WORDS = f"""
    SELECT w.word FROM poc_title_words w
    WHERE e.edits = 1 AND w.tenant_id = $1 AND left(w.word, 1) = left(t.term, 1)
      AND length(w.word) BETWEEN length(t.term) - 1 AND length(t.term) + 1
      AND CASE least(levenshtein_less_equal(w.word, t.term, 2), 3)
          WHEN 3 THEN false
          WHEN 2 THEN w.word = ANY(e.swaps)
          ELSE true
      END
    UNION ALL
    SELECT w.word FROM poc_title_words w
    WHERE e.edits = 2 AND w.tenant_id = $1 AND left(w.word, 1) = left(t.term, 1)
      AND length(w.word) BETWEEN length(t.term) - 2 AND length(t.term) + 2
      AND CASE least(levenshtein_less_equal(w.word, t.term, 4), 5)
          WHEN 5 THEN false
          WHEN 4 THEN {_SWAPPED_TWICE}
          WHEN 3 THEN abs(length(w.word) - length(t.term)) <= 1
              AND (w.word ^@ ANY(e.heads) OR reverse(w.word) ^@ ANY(e.rtails))
              AND ({_SWAPPED_AND_EDITED}
                OR {_SWAPPED_TWICE})
          ELSE true
      END"""

# The tsquery for titles holding every word of the name of TYPO_MIN_LENGTH letters or more,
# each possibly misspelled: per word, its close title words ORed and restricted to the
# title's weight; ANDed over the words. NULL, so no title, when a word has nothing close or
# the name has no word that long.
_MISSPELLED = f"""(
    SELECT to_tsquery('english', string_agg(close, ' & ')) FROM (
        SELECT '(' || string_agg('''' || w.word || ''':A', ' | ') || ')' AS close
        FROM unnest(tsvector_to_array(to_tsvector('simple', {{name}}::text))) AS t (term)
        CROSS JOIN LATERAL ({_SWAPS}
        ) e
        LEFT JOIN LATERAL ({_CLOSE_WORDS}
        ) w ON true
        WHERE length(t.term) >= {{min_length}}
        GROUP BY t.term
    ) per_word
    HAVING count(close) = count(*)
)"""


def _word_start(name: str) -> str:
    """A regular expression for ``name`` at the start of a word, taken literally."""
    return f"(^|[^[:alnum:]]){re.escape(name)}"


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so user input matches literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Sql:
    """Collects WHERE conditions and their ``$n`` parameters."""

    def __init__(self, tenant_id: UUID) -> None:
        self.params: list[Any] = [tenant_id]
        self.where = ["p.tenant_id = $1", "p.status <> 'deleted'"]

    def arg(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"


def build_search(tenant_id: UUID, query: PocQuery) -> tuple[str, list[Any]]:
    """The one statement that answers ``query``: total, page and facets."""
    sql = _Sql(tenant_id)
    sort = query.sort if (query.sort != "relevance" or query.name or query.q) else "created"
    # Each arm is (condition, name score); the hits are the union of the arms, which never
    # overlap. Without a name there is one arm with no condition of its own.
    arms = [("true", "0")]
    if query.name:
        like = sql.arg(f"%{escape_like(query.name)}%")
        # A title with a word starting with the name ranks first, then one containing it;
        # ILIKE finds those. Titles with misspelled words follow, found by their own index
        # in an arm of their own that leaves out what ILIKE found, so none counts twice.
        starts = "2"
        if sort == "relevance":
            starts = f"CASE WHEN p.title ~* {sql.arg(_word_start(query.name))} THEN 3 ELSE 2 END"
        arms = [(f"p.title ILIKE {like}", starts)]
        if len(query.name) >= TYPO_MIN_LENGTH:
            misspelled = _MISSPELLED.format(name=sql.arg(query.name), min_length=TYPO_MIN_LENGTH)
            arms.append((f"p.search @@ {misspelled} AND NOT p.title ILIKE {like}", "1"))
    rank = "0"
    if query.q:
        tsquery = _TSQUERY.format(sql.arg(query.q))
        sql.where.append(f"p.search @@ {tsquery}")
        if sort == "relevance":
            rank = f"ts_rank_cd(p.search, {tsquery}, 32)"
    if query.language:
        sql.where.append(f"p.language = {sql.arg(query.language)}")
    if query.tags:
        operator = "&&" if query.tags_mode == "any" else "@>"
        sql.where.append(f"p.tags {operator} {sql.arg(list(query.tags))}::text[]")
    if query.owner:
        sql.where.append(f"p.user_id = {sql.arg(query.owner)}")
    if query.status:
        sql.where.append(f"p.status = {sql.arg(query.status)}")
    if query.created_from:
        sql.where.append(f"p.created_at >= {sql.arg(query.created_from)}")
    if query.created_to:
        sql.where.append(f"p.created_at < {sql.arg(query.created_to)}")

    order = {
        "created": "h.created_at DESC, h.id DESC",
        "title": "lower(h.title), h.id",
        "popularity": "h.favorite_count DESC, h.view_count DESC, h.created_at DESC, h.id DESC",
        "relevance": "h.score DESC, h.created_at DESC, h.id DESC",
    }[sort]
    # The page size is written into the statement: a planner that knows it wants 20 rows
    # fetches their POCs by key, where a parameter counts as a tenth of the hits and a
    # generic plan may read every POC of the tenant to join them. The offset only skips.
    limit, offset = str(int(query.limit)), sql.arg(query.offset)
    # Only what the facets and the sort read: every column more is copied for every hit
    # (about 0.5 us a column a hit; a popular tag has thousands of hits).
    columns = (
        "p.id, p.language, p.tags, p.created_at"
        + {
            "created": "",
            "title": ", p.title",
            "popularity": ", p.favorite_count, p.view_count",
            "relevance": ", ({rank} + {name_score})::real AS score",
        }[sort]
    )
    hits = " UNION ALL ".join(
        f"""
        SELECT {columns.format(rank=rank, name_score=name_score)}
        FROM pocs_scoped p WHERE {" AND ".join([*sql.where, condition])}"""
        for condition, name_score in arms
    )
    statement = f"""
    WITH hits AS MATERIALIZED ({hits}
    ), page AS (
        SELECT h.id, row_number() OVER (ORDER BY {order}) AS ord
        FROM hits h ORDER BY {order} LIMIT {limit} OFFSET {offset}
    )
    SELECT
        (SELECT count(*) FROM hits) AS total,
        (SELECT coalesce(jsonb_agg(jsonb_build_array(language, n) ORDER BY n DESC, language), '[]')
           FROM (SELECT language, count(*) AS n FROM hits GROUP BY language
                 ORDER BY n DESC, language LIMIT {FACET_LANGUAGES}) f) AS languages,
        (SELECT coalesce(jsonb_agg(jsonb_build_array(tag, n) ORDER BY n DESC, tag), '[]')
           FROM (SELECT tag, count(*) AS n FROM (SELECT unnest(tags) AS tag FROM hits) t
                 GROUP BY tag ORDER BY n DESC, tag LIMIT {FACET_TAGS}) f) AS tags,
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'poc_id', p.id, 'title', p.title, 'description', p.description,
                    'language', p.language, 'tags', p.tags, 'user_id', p.user_id,
                    'status', p.status, 'created_at', p.created_at,
                    'views', p.view_count, 'favorites', p.favorite_count) ORDER BY page.ord), '[]')
           FROM page JOIN pocs_scoped p ON p.tenant_id = $1 AND p.id = page.id) AS pocs
    """
    return statement, sql.params


class PostgresSearch:
    """The default search engine: the tenant's own transaction answers every query."""

    async def search(self, conn: Any, tenant_id: UUID, query: PocQuery) -> SearchPage:
        statement, params = build_search(tenant_id, query)
        row = await conn.fetchrow(statement, *params)
        return SearchPage(
            hits=[PocHit.from_document(doc) for doc in row["pocs"]],
            total=row["total"],
            languages=[FacetCount(v, n) for v, n in row["languages"]],
            tags=[FacetCount(v, n) for v, n in row["tags"]],
        )

    async def suggest(self, conn: Any, tenant_id: UUID, prefix: str, limit: int) -> Suggestions:
        start = f"{escape_like(prefix)}%"
        word = f"% {escape_like(prefix)}%"
        titles = await conn.fetch(
            """SELECT title FROM pocs_scoped
               WHERE tenant_id = $1 AND status <> 'deleted'
                 AND (title ILIKE $2 OR title ILIKE $3)
               GROUP BY title
               ORDER BY max(favorite_count) DESC, max(view_count) DESC, title
               LIMIT $4""",
            tenant_id,
            start,
            word,
            limit,
        )
        tags = await conn.fetch(
            """SELECT tag FROM poc_tags_scoped
               WHERE tenant_id = $1 AND poc_count > 0 AND tag LIKE $2
               ORDER BY poc_count DESC, tag LIMIT $3""",
            tenant_id,
            f"{escape_like(prefix.strip().lower())}%",
            limit,
        )
        return Suggestions(titles=[r["title"] for r in titles], tags=[r["tag"] for r in tags])

    async def popular_tags(self, conn: Any, tenant_id: UUID, limit: int) -> list[FacetCount]:
        rows = await conn.fetch(
            """SELECT tag, poc_count FROM poc_tags_scoped
               WHERE tenant_id = $1 AND poc_count > 0
               ORDER BY poc_count DESC, tag LIMIT $2""",
            tenant_id,
            limit,
        )
        return [FacetCount(r["tag"], r["poc_count"]) for r in rows]
