"""The bus merges a burst of one room's updates into one stream entry, losing nothing."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from pocdojo.realtime.bus import _coalesce


def _edits(count: int) -> tuple[list[bytes], str]:
    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for i in range(count):
        text += f"line {i}\n"
    del text[0:5]
    return updates, str(text)


def test_runs_of_one_rooms_updates_become_one_entry_that_replays_the_same() -> None:
    updates, final = _edits(20)
    batch = [("r1", b"u", u) for u in updates[:10]]
    batch.append(("r1", b"a", b"awareness"))
    batch += [("r1", b"u", u) for u in updates[10:]]
    batch.append(("r2", b"e", b"{}"))
    merged = _coalesce(batch)
    assert [(room, kind) for room, kind, _ in merged] == [
        ("r1", b"u"),
        ("r1", b"a"),
        ("r1", b"u"),
        ("r2", b"e"),
    ]
    doc: Doc[Any] = Doc()
    text = doc.get("code", type=Text)
    for _, kind, data in merged:
        if kind == b"u":
            doc.apply_update(data)
    assert str(text) == final


def test_updates_of_different_rooms_are_not_mixed() -> None:
    one, _ = _edits(3)
    two, _ = _edits(2)
    merged = _coalesce([("a", b"u", one[0]), ("b", b"u", two[0]), ("a", b"u", one[1])])
    assert [room for room, _, _ in merged] == ["a", "b", "a"]
    assert merged[1][2] == two[0]
