"""The title words a misspelled name reaches on PostgreSQL are those OpenSearch's fuzzy match
reaches: the first letter right, then within the edits AUTO:4,6 allows by the optimal string
alignment distance (Lucene's: two adjacent letters swapped are one edit, and no letter is
edited twice). Checked against a reference implementation, over the words around each name
word (every swap, every two swaps, every edit, swaps with one more edit, words further away),
spelled from a few letters so that repeated letters and look-alike swaps abound."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from pocdojo.core.search.postgres import _CLOSE_WORDS, _SWAPS
from tests.conftest import Engines
from tests.core.migration_helpers import insert_tenant

# What the search looks up for each word of a name, on its own.
_LOOKUP = f"""
    SELECT w.word
    FROM unnest(tsvector_to_array(to_tsvector('simple', $2::text))) AS t (term)
    CROSS JOIN LATERAL ({_SWAPS}) e
    CROSS JOIN LATERAL ({_CLOSE_WORDS}) w
"""  # noqa: S608 (the search's own SQL, no input in it)


def distance(a: str, b: str, *, swaps: bool = True) -> int:
    """The optimal string alignment distance by its definition; Levenshtein's without swaps."""
    d = [[max(i, j) if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
            if swaps and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def edits_of(term: str) -> int:
    return 2 if len(term) >= 6 else 1


def within_reach(word: str, term: str) -> bool:
    """OpenSearch's rule: fuzziness AUTO:4,6, prefix_length 1, transpositions."""
    return word[:1] == term[:1] and distance(word[1:], term[1:]) <= edits_of(term)


def swapped(word: str) -> set[str]:
    return {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}


def edited(word: str, letters: str) -> set[str]:
    near = {word[:i] + word[i + 1 :] for i in range(len(word))}
    for c in letters:
        near |= {word[:i] + c + word[i:] for i in range(len(word) + 1)}
        near |= {word[:i] + c + word[i + 1 :] for i in range(len(word))}
    return near


def around(term: str, letters: str, rng: random.Random) -> set[str]:
    """Every swap, two swaps and edit of ``term``, and samples of a swap with an edit and of
    three edits of any kind."""
    once = swapped(term)
    words = once | {w for s in once for w in swapped(s)} | edited(term, letters)
    with_edit = sorted({w for s in once for w in edited(s, letters)})
    words |= set(rng.sample(with_edit, min(len(with_edit), 1000)))
    for _ in range(1000):
        word = term
        for _ in range(3):
            at, letter = rng.randrange(len(word)), rng.choice(letters)
            word = rng.choice(
                [
                    word[:at] + word[at + 1 :],
                    word[:at] + letter + word[at:],
                    word[:at] + letter + word[at + 1 :],
                    word[:at] + word[at + 1 : at + 2] + word[at] + word[at + 2 :],
                ]
            )
        words.add(word)
    return {w for w in words if w}


@pytest.fixture
async def owner(engines: Engines) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(engines.database_url)
    yield conn
    await conn.close()


@pytest.mark.parametrize("length", [4, 5, 6, 7, 9, 14, 27])
@pytest.mark.parametrize("letters", ["ab", "abcd", "éaß"])
async def test_a_name_word_reaches_what_opensearch_reaches(
    owner: asyncpg.Connection, letters: str, length: int
) -> None:
    rng = random.Random(f"{letters}{length}")
    term = ""
    while len(set(term[1:])) < 2:  # something to swap besides the first letter
        term = "".join(rng.choice(letters) for _ in range(length))
    words = around(term, letters, rng)
    tenant, _ = await insert_tenant(owner)
    await owner.copy_records_to_table(
        "poc_title_words", records=[(tenant, w) for w in words], columns=["tenant_id", "word"]
    )

    found = [r["word"] for r in await owner.fetch(_LOOKUP, tenant, term)]

    expected = {w for w in words if within_reach(w, term)}
    assert sorted(found) == sorted(expected)
    # Some are within reach only through swaps, and some just beyond it.
    assert any(distance(w, term, swaps=False) > edits_of(term) for w in expected)
    assert any(w[0] == term[0] and distance(w, term) == edits_of(term) + 1 for w in words)


async def test_a_long_name_word_finds_its_swaps(owner: asyncpg.Connection) -> None:
    tenant, _ = await insert_tenant(owner)
    term = ("abcdefgh" * 25)[:200]
    once = term[:150] + term[151] + term[150] + term[152:]
    twice = term[:5] + term[6] + term[5] + once[7:]
    words = (once, twice, term[:150], "x" + term[1:], term[:4] + "xyz" + term[7:])
    await owner.executemany(
        "INSERT INTO poc_title_words (tenant_id, word) VALUES ($1, $2)",
        [(tenant, w) for w in words],
    )

    found = [r["word"] for r in await owner.fetch(_LOOKUP, tenant, term)]

    assert sorted(found) == sorted([once, twice])
