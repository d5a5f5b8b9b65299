"""Who wrote each character: real Yjs updates from two authors' own documents, replayed."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from pycrdt import Doc, Map, Text

from pocdojo.crdt.authorship import Authored, authored
from pocdojo.crdt.document import EMPTY_UPDATE
from pocdojo.crdt.timeline import Step, Timeline, code_at
from tests.replay_helpers import Script

ALICE = uuid.UUID("00000000-0000-4000-8000-00000000000a")
BOB = uuid.UUID("00000000-0000-4000-8000-00000000000b")
NAMES = {ALICE: "a", BOB: "b", None: "-"}


def _who(state: Authored) -> str:
    """One letter per character: whose it is."""
    return "".join(NAMES[author] for author in state.authors)


def test_inserts_and_deletes_keep_each_character_with_its_author() -> None:
    script = Script()
    script.append(1.0, ALICE, "def add(a, b):\n")
    script.append(2.0, BOB, "    return a + b\n")
    script.insert(3.0, ALICE, 7, "_two")  # inside Alice's line
    script.insert(4.0, BOB, 0, "# sum\n")  # before everything
    script.delete(5.0, ALICE, 13, 29)  # "_two(a, b):\n    " spans both authors
    states = list(authored(script.timeline()))

    assert [s.t for s in states] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [s.code for s in states] == [
        "",
        "def add(a, b):\n",
        "def add(a, b):\n    return a + b\n",
        "def add_two(a, b):\n    return a + b\n",
        "# sum\ndef add_two(a, b):\n    return a + b\n",
        "# sum\ndef addreturn a + b\n",
    ]
    assert [_who(s) for s in states] == [
        "",
        "a" * 15,
        "a" * 15 + "b" * 17,
        "a" * 19 + "b" * 17,
        "b" * 6 + "a" * 19 + "b" * 17,
        "b" * 6 + "a" * 7 + "b" * 13,
    ]
    # Where the last change was: after what was inserted, or where text was deleted.
    assert [s.edited for s in states[1:]] == [15, 32, 11, 6, 13]
    timeline = script.timeline()
    for state in states:
        assert state.code == code_at(timeline, state.t)


def test_characters_beyond_ascii_count_as_one_each() -> None:
    script = Script()
    script.append(1.0, ALICE, "s = 'é'\n")
    script.insert(2.0, BOB, 6, "😀東京")  # after the é: byte and UTF-16 offsets differ here
    script.delete(3.0, ALICE, 5, 7)  # "é😀"
    states = list(authored(script.timeline()))
    assert states[-2].code == "s = 'é😀東京'\n"
    assert _who(states[-2]) == "aaaaaabbbaa"
    assert states[-1].code == "s = '東京'\n"
    assert _who(states[-1]) == "aaaaabbaa"
    assert states[-1].edited == 5


def test_the_base_and_unknown_authors_have_none() -> None:
    before = Script()
    before.append(0.5, ALICE, "print(1)\n")  # before the recording: its author is not kept
    script = Script(base=before.steps[0].update)
    script.append(1.0, ALICE, "print(2)\n")
    script.append(2.0, None, "print(3)\n")
    states = list(authored(script.timeline()))
    assert states[0].t == 0.0
    assert states[0].code == "print(1)\n"
    assert _who(states[0]) == "-" * 9
    assert _who(states[-1]) == "-" * 9 + "a" * 9 + "-" * 9


def test_a_step_that_leaves_the_code_alone_yields_nothing() -> None:
    script = Script()
    script.append(1.0, ALICE, "x = 1\n")
    other: Doc[Any] = Doc()
    other.get("code", type=Text)
    other.apply_update(script.updates[0])
    made: list[bytes] = []
    subscription = other.observe(lambda event: made.append(event.update))
    other.get("meta", type=Map)["language"] = "Python"  # another shared type changes
    other.unobserve(subscription)
    timeline = Timeline(script.timeline().base, [*script.steps, Step(2.0, made[0], BOB)])
    assert [s.t for s in authored(timeline)] == [0.0, 1.0]


def test_concurrent_edits_merge_with_their_authors() -> None:
    """Both type at the same place before seeing each other's edit, as in a room."""
    alice: Doc[Any] = Doc()
    bob: Doc[Any] = Doc()
    updates: dict[UUID, list[bytes]] = {ALICE: [], BOB: []}
    for doc, who in ((alice, ALICE), (bob, BOB)):
        doc.get("code", type=Text)
        doc.observe(lambda event, who=who: updates[who].append(event.update))
    alice.get("code", type=Text).insert(0, "AAAA")
    bob.get("code", type=Text).insert(0, "BB")
    steps = [Step(1.0, updates[ALICE][0], ALICE), Step(1.05, updates[BOB][0], BOB)]
    [_, first, second] = authored(Timeline(EMPTY_UPDATE, steps))
    assert _who(first) == "aaaa"
    assert len(second.code) == 6
    assert _who(second) == "".join("a" if c == "A" else "b" for c in second.code)
