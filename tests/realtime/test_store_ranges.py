"""Which updates a room writes and announces: exact number ranges, and nothing written
before what it depends on.

After a Redis restart a node may hold another node's updates 5 and 9 but never have
received 6 to 8 (they were in the stream Redis lost). Announcing "5 to 9 stored" would make
every node forget 6 to 8, stored by no one; writing 9 without them would leave the log
holding an update without its dependency, which Yjs and pycrdt read differently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text, merge_updates

from pocdojo.crdt import wire
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


# --- with local updates: only the remote ones they need -------------------------------------


class _Client:
    """A Yjs client of one room: it holds what the room holds, and its edits go to the room
    as accepted local updates."""

    def __init__(self, room: Room, client_id: int) -> None:
        self.room = room
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.text = self.doc.get("code", type=Text)

    def edit(self, change: Callable[[Text], None]) -> bytes:
        self.doc.apply_update(self.room.document.encode(self.doc.get_state()))
        made: list[bytes] = []
        watch = self.doc.observe(lambda event: made.append(event.update))
        change(self.text)
        self.doc.unobserve(watch)
        (update,) = made
        self.room.document.apply(update)
        self.room._log(update)
        return update


def _typed_elsewhere(room: Room, pieces: list[tuple[int, str]]) -> list[bytes]:
    """Updates another node's client made, each inserting a piece at an index, as they
    reach ``room``."""
    doc: Doc[Any] = Doc(client_id=7)
    text = doc.get("code", type=Text)
    doc.apply_update(room.document.encode())
    updates: list[bytes] = []
    watch = doc.observe(lambda event: updates.append(event.update))
    for index, piece in pieces:
        text.insert(index, piece)
    doc.unobserve(watch)
    for number, update in enumerate(updates, 1):
        room.apply_remote_update(update, range_tag("far", number, number))
    return updates


def test_a_local_update_is_written_after_only_the_remote_updates_it_needs() -> None:
    room = _room()
    first, second, third = _typed_elsewhere(room, [(0, "far;"), (4, "more;"), (9, "end;")])
    # Typed at the very start: beside the first remote piece only.
    start = _Client(room, client_id=1).edit(lambda text: text.insert(0, "start;"))
    writes = room.take_writes(now=0.0, grace=60.0)
    assert writes.rows() == [first, start]
    assert writes.markers(room.origin) == [f"{room.origin}:1:1".encode(), b"far:1:1"]
    assert [r.update for r in room.remote] == [second, third]  # left to their own node
    # Typed after the last piece: that one, and the one before it (its client's clock).
    end = _Client(room, client_id=1).edit(lambda text: text.insert(len(text), "tail;"))
    assert room.take_writes(now=0.0, grace=60.0).rows() == [second, third, end]
    assert room.remote == []


def test_a_local_update_deleting_remote_text_is_written_after_it() -> None:
    room = _room()
    first, second = _typed_elsewhere(room, [(0, "keep;"), (5, "drop;")])
    cut = _Client(room, client_id=1).edit(lambda text: text.__delitem__(slice(5, 10)))
    assert room.take_writes(now=0.0, grace=60.0).rows() == [first, second, cut]


def test_remote_updates_that_waited_the_grace_go_with_the_local_ones() -> None:
    room = _room()
    first, second = _typed_elsewhere(room, [(0, "a;"), (0, "b;")])
    room.remote[0].arrived = 0.0  # the first waited; the second came just now
    room.remote[1].arrived = 100.0
    mine = _Client(room, client_id=1).edit(lambda text: text.insert(len(text), "c;"))
    # "c;" goes after "a;" (the last character), which the first update added.
    assert room.take_writes(now=100.0, grace=60.0).rows() == [first, mine]
    assert [r.update for r in room.remote] == [second]


def test_a_failed_flush_puts_back_what_it_took_in_the_order_it_arrived() -> None:
    room = _room()
    first, second, third = _typed_elsewhere(room, [(0, "a;"), (2, "b;"), (4, "c;")])
    _Client(room, client_id=1).edit(lambda text: text.insert(0, "start;"))
    writes = room.take_writes(now=0.0, grace=60.0)
    assert [r.update for r in writes.remote] == [first]
    room.restore(writes)
    assert [r.update for r in room.remote] == [first, second, third]
    assert len(room.unsaved) == 1


class _Node:
    """A room on a node of its own, with one client, reading the room's stream (shared by
    every node, in one order, as the Redis stream is) up to where it got, and a log."""

    def __init__(self, name: str, client_id: int, stream: list[_Entry], log: list[bytes]):
        self.room = Room(
            uuid.uuid4(),
            uuid.uuid4(),
            Document(new_doc()),
            publish=lambda kind, data, tag: stream.append((name, kind, data, tag)),
            max_document_bytes=1 << 20,
        )
        self.room.origin = name
        self.client = _Client(self.room, client_id)
        self.stream = stream
        self.read = 0  # entries of the stream read
        self.log = log

    def catch_up(self, count: int) -> None:
        """Read up to ``count`` more entries of the stream (this node's own are skipped)."""
        for origin, kind, data, tag in self.stream[self.read : self.read + count]:
            if origin == self.room.origin:
                continue
            if kind == b"u":
                self.room.apply_remote_update(data, tag)
            elif kind == b"p":
                self.room.stored(data)
        self.read = min(len(self.stream), self.read + count)

    def flush(self, *, late: bool = False) -> None:
        """Write what is due and announce it; ``late``: every remote update has waited the
        grace period."""
        writes = self.room.take_writes(now=1e12 if late else 0.0, grace=60.0)
        self.log.extend(writes.rows())
        for marker in writes.markers(self.room.origin):
            self.room.stored(marker)
            self.stream.append((self.room.origin, b"p", marker, b""))


_Entry = tuple[str, bytes, bytes, bytes]  # origin, kind, data, tag


@pytest.mark.parametrize("node_count", [2, 3])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_log_never_holds_an_update_without_what_it_needs(
    node_count: int, data: st.DataObject
) -> None:
    """Clients on two or three nodes edit one document anywhere, as fast as they like, each
    node reading the room's stream at its own pace; each node's flush writes its own updates
    and the remote ones they need. After every flush, the log read from the start holds
    nothing back; at the end it reads as every live document."""
    log: list[bytes] = []
    stream: list[_Entry] = []
    nodes = [_Node(name, n + 1, stream, log) for n, name in enumerate("abc"[:node_count])]
    for _ in range(data.draw(st.integers(10, 80))):
        node = nodes[data.draw(st.integers(0, node_count - 1))]
        step = data.draw(st.sampled_from(["insert", "insert", "delete", "read", "flush"]))
        if step == "insert":
            at = data.draw(st.integers(0, 10_000))
            piece = data.draw(st.sampled_from(["x", "yz", ";", "\n"]))

            def insert(text: Text, at: int = at, piece: str = piece) -> None:
                text.insert(at % (len(text) + 1), piece)

            node.client.edit(insert)
        elif step == "delete":
            at, span = data.draw(st.integers(0, 10_000)), data.draw(st.integers(1, 3))

            def delete(text: Text, at: int = at, span: int = span) -> None:
                if len(text):
                    start = at % len(text)
                    del text[start : min(len(text), start + span)]

            if len(node.room.code()):
                node.client.edit(delete)
        elif step == "read":
            node.catch_up(data.draw(st.integers(1, 8)))
        else:
            node.flush()
            replay = Document(new_doc())
            for row in log:
                replay.apply(row)
            assert replay.held is None, "the log holds an update without what it needs"
    for node in nodes:
        node.catch_up(len(stream))
    for _ in range(2):
        for node in nodes:
            node.flush(late=True)
            for other in nodes:
                other.catch_up(len(stream))
    assert all(not n.room.unsaved and not n.room.remote for n in nodes)
    replay = Document(new_doc())
    for row in log:
        replay.apply(row)
    assert replay.held is None
    assert {replay.code()} == {n.room.code() for n in nodes}


def test_a_footprint_counts_clocks_as_yjs_does() -> None:
    """Clocks count UTF-16 code units: an emoji is two, an accented letter one."""
    doc: Doc[Any] = Doc(client_id=5)
    text = doc.get("code", type=Text)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    for piece in ["é", "😀", "ab"]:
        text += piece
    print_ = [wire.footprint(u) for u in updates]
    assert [p.adds[5] for p in print_] == [(0, 1), (1, 3), (3, 5)]
    # Each goes after the last one's last unit, and needs that client's clocks before it.
    assert print_[2].needs == [(5, 0, 3), (5, 2, 3)]


def test_a_footprint_needs_what_an_update_deletes() -> None:
    doc: Doc[Any] = Doc(client_id=5)
    text = doc.get("code", type=Text)
    text += "abc"
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    del text[1:2]
    assert wire.footprint(updates[0]) == wire.Footprint({}, [(5, 1, 2)])
