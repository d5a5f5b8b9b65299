"""Folding stored timeline rows into a base and steps, and the code at a given second."""

from __future__ import annotations

import uuid
from typing import Any

from pycrdt import Doc, Text

from pocdojo.crdt.timeline import STEP_SECONDS, Row, coalesced, code_at, from_rows

ANN, BOB = uuid.uuid4(), uuid.uuid4()


class Writer:
    """A client typing into its own copy; each edit is one Yjs update."""

    def __init__(self, base: bytes | None = None) -> None:
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("code", type=Text)
        if base is not None:
            self.doc.apply_update(base)
        self.updates: list[bytes] = []
        self.doc.observe(lambda event: self.updates.append(event.update))

    def type(self, index: int, text: str) -> bytes:
        self.text.insert(index, text)
        return self.updates[-1]

    def take(self, update: bytes) -> None:
        self.doc.apply_update(update)


def test_the_code_at_a_second_is_the_base_and_the_steps_up_to_it() -> None:
    seed = Writer()
    seed.type(0, "x = 1\n")
    base = seed.doc.get_update()
    ann, bob = Writer(base), Writer(base)
    first = ann.type(6, "y = 2\n")
    bob.take(first)
    second = bob.type(12, "z = 3\n")
    rows = [
        Row(3.0, second, False, BOB),
        Row(0.0, base, True, None),
        Row(1.0, first, False, ANN),
    ]
    timeline = from_rows(rows)
    assert code_at(timeline, 0) == "x = 1\n"
    assert code_at(timeline, 0.99) == "x = 1\n"
    assert code_at(timeline, 1.0) == "x = 1\ny = 2\n"
    assert code_at(timeline, 10) == "x = 1\ny = 2\nz = 3\n"
    assert [(s.t, s.author) for s in timeline.steps] == [(1.0, ANN), (3.0, BOB)]
    assert timeline.authors() == [ANN, BOB]


def test_an_update_stored_by_another_node_is_its_clients_author() -> None:
    ann = Writer()
    one, two = ann.type(0, "a"), ann.type(1, "b")
    rows = [
        Row(0.0, b"\x00\x00", True, None),
        Row(1.0, one, False, ANN),
        Row(2.0, two, False, None),
    ]
    steps = from_rows(rows).steps
    assert [s.author for s in steps] == [ANN, ANN]


def test_a_later_nodes_state_is_a_step_and_nothing_before_the_first_is_lost() -> None:
    ann = Writer()
    ann.type(0, "early ")  # typed before the recording: in the base, not a step
    state_at_start = ann.doc.get_update()
    late = ann.type(6, "late")
    # A node that loaded the room at 5 s holds everything by then.
    rows = [
        Row(0.2, state_at_start, True, None),
        Row(4.0, late, False, ANN),
        Row(5.0, ann.doc.get_update(), True, None),
    ]
    timeline = from_rows(rows)
    assert code_at(timeline, 0) == "early "  # before the first state row: it is the base
    assert code_at(timeline, 4.5) == "early late"
    assert [s.author for s in timeline.steps] == [ANN, None]


def test_for_a_player_one_authors_burst_is_one_step_at_its_last_update() -> None:
    ann, bob = Writer(), Writer()
    rows = [Row(0, b"\x00\x00", True, None)]
    t = 1.0
    for ch in "abc":
        rows.append(Row(t, ann.type(len(str(ann.text)), ch), False, ANN))
        t += STEP_SECONDS / 4
    rows.append(Row(t, bob.type(0, "B"), False, BOB))
    rows.append(Row(t + 1, ann.type(3, "d"), False, ANN))
    exact = from_rows(rows)
    assert [s.author for s in exact.steps] == [ANN] * 3 + [BOB, ANN]
    assert code_at(exact, 1.0) == "a"  # exact to the update
    timeline = coalesced(exact)
    assert [s.author for s in timeline.steps] == [ANN, BOB, ANN]
    assert timeline.steps[0].t == exact.steps[2].t
    assert code_at(timeline, 1.0) == ""  # shown a little late, never early
    assert sorted(code_at(timeline, 100)) == sorted("abcdB")
