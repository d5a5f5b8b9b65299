"""Free loopback ports for the servers this machine starts (nodes, SeaweedFS, Valkey).

They are picked outside the kernel's ephemeral range (``ip_local_port_range``). A port picked
inside it, as binding to port 0 does, may be taken by any outgoing connection as its local
port in the seconds before its server binds it, and the server then fails with "address
already in use". Outside that range only another server can take it.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

_FLOOR = 10000  # below: ports other software expects to find free
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_TRIES = 2000


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out to outgoing connections, first to last."""
    try:
        low, high = (int(part) for part in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def _bindable(ports: list[int]) -> bool:
    with contextlib.ExitStack() as stack:
        try:
            for port in ports:
                stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick(span: int, offset: int, taken: set[int]) -> int:
    """The first of ``span`` consecutive free ports, each with its ``+ offset`` twin free too
    (``offset`` 0: no twin), none in ``taken``, none in the ephemeral range."""
    low, high = ephemeral_range()
    rng = random.Random()
    for _ in range(_TRIES):
        first = rng.randrange(_FLOOR, 65536 - span)
        ports = list(range(first, first + span))
        if offset:
            ports += [port + offset for port in ports]
        if any(p > 65535 or low <= p <= high or p in taken for p in ports):
            continue
        if _bindable(ports):
            return first
    raise RuntimeError(f"no free run of {span} loopback ports outside {low}-{high}")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    ports: list[int] = []
    for _ in range(count):
        ports.append(_pick(1, 0, set(ports)))
    return ports


def free_run(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    return _pick(count, 0, set())


def free_port_with_twin(offset: int, taken: set[int]) -> int:
    """A free port, not in ``taken``, whose ``+ offset`` twin is free too (servers that listen
    on a port and on a second one derived from it)."""
    return _pick(1, offset, taken)
