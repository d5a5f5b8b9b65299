"""What a document socket takes: one y-websocket message a frame, read whole and strictly.

A message is a type (a byte), then for sync a sync type (a byte) and a length-prefixed state
vector or update, for awareness a length-prefixed awareness update, for auth a permission
(and a reason), for an awareness query nothing. Every declared length must match the frame
exactly, and what the message carries must read alike in pycrdt and in Yjs (``crdt.wire``),
so that a frame is either applied whole or refused before anything of it is: pycrdt's own
readers take a prefix, and apply an awareness update entry by entry until one fails.

Awareness states are JSON, parsed by every stock client with ``JSON.parse``: a state is an
object or null, with no NaN or Infinity (which Python's ``json`` reads and writes and
JavaScript refuses) and no number too large for a double (``js_json``, which the events
socket reads its messages with too).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, NoReturn

from pycrdt import Encoder

from pocdojo.crdt import wire
from pocdojo.crdt.wire import Malformed, Reader

SYNC, AWARENESS, AUTH, QUERY_AWARENESS = 0, 1, 2, 3
SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE = 0, 1, 2
_PERMISSION_DENIED = 0


@dataclass(frozen=True)
class SyncStep1:
    state: bytes  # the sender's state vector


@dataclass(frozen=True)
class SyncUpdate:
    update: bytes  # sync step 2 or an update: both are applied alike


@dataclass(frozen=True)
class AwarenessUpdate:
    payload: bytes


@dataclass(frozen=True)
class QueryAwareness:
    pass


@dataclass(frozen=True)
class Auth:
    pass


Message = SyncStep1 | SyncUpdate | AwarenessUpdate | QueryAwareness | Auth


def parse(frame: bytes) -> Message:
    """Read one frame of a document socket.

    Raises:
        Malformed: the frame is not exactly one message that pycrdt and Yjs read alike.
    """
    reader = Reader(frame)
    kind = reader.u8()  # a lib0 integer, in one byte as every client writes it
    message: Message
    if kind == SYNC:
        step = reader.u8()
        payload = reader.var_bytes()
        if step == SYNC_STEP1:
            wire.state_vector(payload)
            message = SyncStep1(payload)
        elif step in (SYNC_STEP2, SYNC_UPDATE):
            wire.check_update(payload)
            message = SyncUpdate(payload)
        else:
            raise Malformed(f"unknown sync message {step}")
    elif kind == AWARENESS:
        payload = reader.var_bytes()
        awareness_states(payload)
        message = AwarenessUpdate(payload)
    elif kind == AUTH:
        if reader.var_uint() != _PERMISSION_DENIED:
            raise Malformed("unknown auth message")
        reader.var_string()
        message = Auth()
    elif kind == QUERY_AWARENESS:
        message = QueryAwareness()
    else:
        raise Malformed(f"unknown message type {kind}")
    reader.done()
    return message


@dataclass(frozen=True)
class AwarenessEntry:
    client: int
    clock: int
    state: str  # JSON: an object, or null when the client left


def awareness_entries(payload: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update, as they were sent (read leniently: the frame
    was already read strictly by ``parse``)."""
    reader = Reader(payload)
    return [
        AwarenessEntry(reader.var_uint(), reader.var_uint(), reader.var_string())
        for _ in range(reader.var_uint())
    ]


def awareness_update(entries: list[AwarenessEntry]) -> bytes:
    """An awareness update holding ``entries``."""
    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for entry in entries:
        encoder.write_var_uint(entry.client)
        encoder.write_var_uint(entry.clock)
        encoder.write_var_string(entry.state)
    return encoder.to_bytes()


def awareness_states(payload: bytes) -> dict[int, dict[str, Any] | None]:
    """An awareness update as ``{client: state}`` (None: the client left).

    Raises:
        Malformed: not exactly one awareness update that every stock client reads.
    """
    reader = Reader(payload)
    states = {}
    for _ in range(reader.var_uint()):
        client = reader.var_uint()
        reader.var_uint()  # the clock
        state = js_json(reader.var_string(), "an awareness state")
        if state is not None and not isinstance(state, dict):
            raise Malformed("an awareness state that is neither an object nor null")
        states[client] = state
    reader.done()
    return states


def js_json(text: str, what: str) -> Any:
    """``text`` read as JSON, if JavaScript's ``JSON.parse`` reads it too.

    Python's ``json`` reads (and writes) NaN, Infinity and -Infinity, and a number too large
    for a double as infinity; ``JSON.parse`` throws on all of them once relayed.

    Raises:
        Malformed: not JSON, or not JSON to ``JSON.parse`` (``what`` names it in the message).
    """

    def constant(name: str) -> NoReturn:
        raise Malformed(f"{name} in {what}")

    def finite(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise Malformed(f"a number too large in {what}")
        return value

    try:
        return json.loads(text, parse_constant=constant, parse_float=finite)
    except Malformed:
        raise
    except RecursionError as exc:
        raise Malformed(f"{what} nested too deep") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer of too many digits
        raise Malformed(f"{what} that is not JSON: {exc}") from exc
