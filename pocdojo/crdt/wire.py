"""Strict readers of Yjs's binary encodings: lib0's integers and strings, state vectors, and
v1 updates.

pycrdt (yrs) and Yjs do not read every byte string alike. Yjs reads integers up to 2^53 - 1
(the largest a JavaScript number holds exactly) and fails past them, where yrs keeps the low
53 bits of a client id and the low 32 of a clock; a struct whose clocks run past 32 bits can
make yrs panic and leave the document unusable; yrs reads nested values by recursion, so an
array nested some 50,000 deep (100 KB) overflows the native stack and kills the process; and
both read a prefix and ignore the bytes after it. A server that applied what yrs accepts and
relayed the bytes as they came would hold one document while its JavaScript clients held
another, or none at all.

These readers accept only what both read the same way, and raise ``Malformed`` for the rest:
every integer within 2^53 - 1, every clock within 32 bits, values nested at most
``MAX_DEPTH`` deep, strings in valid UTF-8, the content kinds, type references and value tags
Yjs knows, and no byte left over.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
MAX_CLOCK = 2**32 - 1  # yrs keeps clocks in 32 bits
MAX_DEPTH = 128  # arrays and maps within a value (yrs's JSON reader stops at this depth too)

# An item's info byte: the content kind in the low 5 bits, then which fields follow.
_KIND = 0x1F
_PARENT_SUB = 0x20
_RIGHT_ORIGIN = 0x40
_ORIGIN = 0x80
_GC, _SKIP = 0, 10
_XML_ELEMENT, _XML_HOOK, _LAST_TYPE_REF = 3, 5, 6
# lib0's value tags (readAny); undefined, null, false and true carry nothing more.
_BARE_VALUES = frozenset((127, 126, 121, 120))
_INTEGER = 125
_FLOAT32 = 124
_FLOAT64 = 123
_BIGINT = 122
_STRING = 119
_MAP = 118
_ARRAY = 117
_BYTES = 116


class Malformed(ValueError):
    """Bytes that Yjs and pycrdt would not read alike, or at all."""


class Reader:
    """Reads lib0's encodings from ``data``, refusing what lib0 and yrs read differently."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise Malformed("truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def var_uint(self) -> int:
        """lib0's ``readVarUint``: 7 bits a byte, least significant first."""
        data, pos = self.data, self.pos
        if pos < len(data) and data[pos] < 0x80:  # most are below 128
            self.pos = pos + 1
            return data[pos]
        num, shift = 0, 0
        while pos < len(data):
            byte = data[pos]
            pos += 1
            num |= (byte & 0x7F) << shift
            if num > MAX_SAFE_INTEGER:
                raise Malformed("an integer above 2^53 - 1")
            if byte < 0x80:
                self.pos = pos
                return num
            shift += 7
        raise Malformed("a truncated integer")

    def var_int(self) -> None:
        """Skips lib0's ``readVarInt`` (sign in the first byte's second bit)."""
        byte = self.u8()
        num, shift = byte & 0x3F, 6
        while byte & 0x80:
            byte = self.u8()
            num |= (byte & 0x7F) << shift
            shift += 7
            if num > MAX_SAFE_INTEGER:
                raise Malformed("an integer above 2^53 - 1")

    def take(self, size: int) -> bytes:
        if size > len(self.data) - self.pos:
            raise Malformed("a length past the end")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def var_bytes(self) -> bytes:
        """lib0's ``readVarUint8Array``: a length, then that many bytes."""
        return self.take(self.var_uint())

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode()
        except UnicodeDecodeError as exc:
            raise Malformed("a string that is not UTF-8") from exc

    def done(self) -> None:
        """Refuse bytes past what was read."""
        if self.pos != len(self.data):
            raise Malformed(f"{len(self.data) - self.pos} bytes past the end")


def state_vector(state: bytes) -> dict[int, int]:
    """An encoded state vector as ``{client: next clock}``.

    Raises:
        Malformed: not exactly one state vector both Yjs and pycrdt read alike.
    """
    reader = Reader(state)
    clocks = {}
    for _ in range(reader.var_uint()):
        client, clock = reader.var_uint(), reader.var_uint()
        if clock > MAX_CLOCK:
            raise Malformed("a clock past 32 bits")
        clocks[client] = clock
    reader.done()
    return clocks


def check_update(update: bytes) -> list[tuple[int, int]]:
    """Read a v1 update as Yjs does (``readClientsStructRefs``, then ``readDeleteSet``).

    Returns:
        The ids (client, clock) of the items it carries that hold a shared type.

    Raises:
        Malformed: not exactly one update both Yjs and pycrdt read alike.
    """
    reader = Reader(update)
    types: list[tuple[int, int]] = []
    for _ in range(reader.var_uint()):
        structs = reader.var_uint()
        client = reader.var_uint()
        clock = reader.var_uint()
        for _ in range(structs):
            length = _struct(reader)
            if length < 0:  # a type: one tick long
                types.append((client, clock))
                length = 1
            clock += length
            if clock > MAX_CLOCK:
                raise Malformed("a clock past 32 bits")
    for _ in range(reader.var_uint()):
        reader.var_uint()  # the client
        for _ in range(reader.var_uint()):
            if reader.var_uint() + reader.var_uint() > MAX_CLOCK:
                raise Malformed("a deleted range past 32 bits")
    reader.done()
    return types


Range = tuple[int, int, int]  # a client's clocks, first to end (excluded)


@dataclass(frozen=True, slots=True)
class Footprint:
    """Which ids a v1 update adds, and which it needs present to be integrated whole."""

    adds: dict[int, tuple[int, int]]  # per client: its first clock, and the end (excluded)
    # Its origins, the items holding its parents, what it deletes, and for every client it
    # adds to, that client's clocks before (Yjs integrates a client's structs without gaps).
    needs: list[Range]

    def needed_by(self, needs: list[Range]) -> bool:
        """Whether it adds any id of ``needs``."""
        adds = self.adds
        for client, first, end in needs:
            added = adds.get(client)
            if added is not None and first < added[1] and added[0] < end:
                return True
        return False


def footprint(update: bytes) -> Footprint:
    """What ``update`` adds and refers to (read as ``check_update`` reads it; the update was
    checked before). A gap in the middle of a client's structs (a skip) is counted as added
    and as needed, which errs on the side of writing an update that was not needed."""
    reader = Reader(update)
    adds: dict[int, tuple[int, int]] = {}
    needs: list[Range] = []
    for _ in range(reader.var_uint()):
        structs = reader.var_uint()
        client = reader.var_uint()
        first = clock = reader.var_uint()
        if first:
            needs.append((client, 0, first))
        for _ in range(structs):
            skip = reader.pos < len(reader.data) and reader.data[reader.pos] & _KIND == _SKIP
            length = max(_struct(reader, needs), 1)
            if skip:
                needs.append((client, clock, clock + length))
            clock += length
        earlier = adds.get(client)
        adds[client] = (
            (first, clock) if earlier is None else (min(earlier[0], first), max(earlier[1], clock))
        )
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        for _ in range(reader.var_uint()):
            clock = reader.var_uint()
            needs.append((client, clock, clock + reader.var_uint()))
    return Footprint(adds, needs)


def struct_starts(update: bytes) -> dict[int, int]:
    """The first clock of each client's structs in a v1 update (read as ``check_update``
    reads it; the update was checked before)."""
    reader = Reader(update)
    starts = {}
    for _ in range(reader.var_uint()):
        structs = reader.var_uint()
        client = reader.var_uint()
        starts[client] = reader.var_uint()
        for _ in range(structs):
            _struct(reader)
    return starts


def _struct(reader: Reader, refs: list[Range] | None = None) -> int:
    """Read one struct; returns its length in clock ticks, or -1 for an item holding a type
    (one tick long). The ids it refers to (its origins, the item holding its parent) are
    added to ``refs`` if given."""
    info = reader.u8()
    kind = info & _KIND
    if kind in (_GC, _SKIP):
        return reader.var_uint()
    if info & _ORIGIN:
        _id(reader, refs)
    if info & _RIGHT_ORIGIN:
        _id(reader, refs)
    if not info & (_ORIGIN | _RIGHT_ORIGIN):
        parent_named = reader.var_uint()
        if parent_named == 1:
            reader.var_string()  # a root type, by name
        elif parent_named == 0:
            _id(reader, refs)  # the item holding the parent type
        else:
            raise Malformed("an unknown parent kind")
        if info & _PARENT_SUB:
            reader.var_string()  # the key in a map
    return _content(reader, kind)


def _id(reader: Reader, refs: list[Range] | None) -> None:
    client = reader.var_uint()
    clock = reader.var_uint()
    if clock > MAX_CLOCK:
        raise Malformed("a clock past 32 bits")
    if refs is not None:
        refs.append((client, clock, clock + 1))


def _content(reader: Reader, kind: int) -> int:
    """Read an item's content (Yjs's ``contentRefs``); returns its length (-1: a type)."""
    if kind == 1:  # deleted
        return reader.var_uint()
    if kind == 2:  # JSON (strings)
        count = reader.var_uint()
        for _ in range(count):
            reader.var_string()
        return count
    if kind == 3:  # binary
        reader.var_bytes()
        return 1
    if kind == 4:  # string: its length in UTF-16 code units, as JavaScript counts
        return len(reader.var_string().encode("utf-16-le")) // 2
    if kind == 5:  # embed (JSON)
        reader.var_string()
        return 1
    if kind == 6:  # format: key, JSON value
        reader.var_string()
        reader.var_string()
        return 1
    if kind == 7:  # a type
        ref = reader.var_uint()
        if ref > _LAST_TYPE_REF:
            raise Malformed(f"an unknown type {ref}")
        if ref in (_XML_ELEMENT, _XML_HOOK):
            reader.var_string()  # its name
        return -1
    if kind == 8:  # values
        count = reader.var_uint()
        for _ in range(count):
            _value(reader)
        return count
    if kind == 9:  # a subdocument: guid, options
        reader.var_string()
        _value(reader)
        return 1
    raise Malformed(f"an unknown content kind {kind}")


def _value(reader: Reader) -> None:
    """Read one of lib0's values (``readAny``), iteratively, at most ``MAX_DEPTH`` deep."""
    # Per open container: how many values it still holds, and whether each follows a key.
    stack = [[1, 0]]
    while stack:
        top = stack[-1]
        if not top[0]:
            stack.pop()
            continue
        top[0] -= 1
        if top[1]:
            reader.var_string()
        tag = reader.u8()
        if tag in (_MAP, _ARRAY):
            if len(stack) > MAX_DEPTH:
                raise Malformed(f"values nested over {MAX_DEPTH} deep")
            stack.append([reader.var_uint(), tag == _MAP])
        elif tag == _INTEGER:
            reader.var_int()
        elif tag == _FLOAT32:
            reader.take(4)
        elif tag in (_FLOAT64, _BIGINT):
            reader.take(8)
        elif tag == _STRING:
            reader.var_string()
        elif tag == _BYTES:
            reader.var_bytes()
        elif tag not in _BARE_VALUES:
            raise Malformed(f"an unknown value tag {tag}")
