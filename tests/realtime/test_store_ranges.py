"""Which updates a room writes and announces: exact number ranges, and nothing written
before what it depends on.

After a Redis restart a node may hold another node's updates 5 and 9 but never have
received 6 to 8 (they were in the stream Redis lost). Announcing "5 to 9 stored" would make
every node forget 6 to 8, stored by no one; writing 9 without them would leave the log
holding an update without its dependency, which Yjs and pycrdt read differently.
"""

from __future__ import annotations

import uuid
from typing import Any

from pycrdt import Doc, Text, merge_updates

from pocdojo.crdt.document import Document, new_doc
from pocdojo.realtime.bus import _coalesce, range_tag
from pocdojo.realtime.room import Room
from tests.yclient import typed


def _room() -> Room:
    return Room(
        uuid.uuid4(),
        uuid.uuid4(),
        Document(new_doc()),
        publish=lambda kind, data, tag: None,
        max_document_bytes=1 << 20,
    )


def _edits(count: int) -> list[bytes]:
    """``count`` updates of one client, each depending on the one before."""
    return typed(*(f"{i};" for i in range(count)))


def test_runs_merge_only_while_their_numbers_follow_on() -> None:
    updates = _edits(5)
    batch = [
        ("r", b"u", updates[0], range_tag("o", 1, 1)),
        ("r", b"u", updates[1], range_tag("o", 2, 2)),
        ("r", b"u", updates[2], range_tag("o", 4, 4)),  # 3 was never published
        ("r", b"u", updates[3], range_tag("p", 5, 5)),  # another room's numbers
        ("r", b"u", updates[4], range_tag("p", 6, 6)),
    ]
    assert [tag for _, _, _, tag in _coalesce(batch)] == [b"o:1:2", b"o:4:4", b"p:5:6"]


def test_announcements_never_cover_a_number_this_node_did_not_store() -> None:
    room = _room()
    updates = _edits(4)
    room.apply_remote_update(updates[0], range_tag("far", 5, 5))
    room.apply_remote_update(updates[1], range_tag("far", 9, 9))  # 6 to 8 lost on the way
    room.apply_remote_update(updates[2], range_tag("far", 10, 12))
    writes = room.take_writes(now=1e12, grace=0.0)
    assert writes.markers(room.origin) == [b"far:5:5", b"far:9:12"]


def test_an_announcement_drops_only_the_entries_it_covers() -> None:
    room = _room()
    updates = _edits(3)
    room.apply_remote_update(updates[0], range_tag("far", 5, 5))
    room.apply_remote_update(updates[1], range_tag("far", 6, 8))
    room.apply_remote_update(updates[2], range_tag("far", 9, 9))
    room.stored(b"far:5:7")  # covers 5 but only part of 6..8
    assert [(r.first, r.last) for r in room.remote] == [(6, 8), (9, 9)]
    room.stored(b"far:6:9")
    assert room.remote == []


def test_an_update_waiting_for_a_dependency_is_written_only_once_it_arrived() -> None:
    room = _room()
    first, second, third = _edits(3)
    room.apply_remote_update(third, range_tag("far", 3, 3))  # 1 and 2 not here yet
    assert room.document.held is not None
    writes = room.take_writes(now=1e12, grace=0.0)
    assert writes.rows() == []
    assert [r.first for r in room.remote] == [3]  # kept for later, not dropped
    room.apply_remote_update(first, range_tag("far", 1, 1))
    writes = room.take_writes(now=1e12, grace=0.0)
    assert writes.rows() == [first]  # 1 goes; 3 still waits for 2
    room.apply_remote_update(second, range_tag("far", 2, 2))
    assert room.document.held is None
    writes = room.take_writes(now=1e12, grace=0.0)
    assert writes.rows() == [third, second]
    stored: Doc[Any] = Doc()
    for update in [first, third, second]:
        stored.apply_update(update)
    assert str(stored.get("code", type=Text)) == "0;1;2;"


def test_an_update_partly_integrated_is_written_at_once() -> None:
    """One entry merging an update that integrates and one that waits: a local update may
    depend on the first part, so the entry cannot wait for the second part's dependency."""
    room = _room()
    first, _, third = _edits(3)
    room.apply_remote_update(merge_updates(first, third), range_tag("far", 1, 2))
    assert room.document.held is not None  # the third waits for the second
    writes = room.take_writes(now=1e12, grace=0.0)
    assert writes.rows() == [merge_updates(first, third)]
    assert room.remote == []
