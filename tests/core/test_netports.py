"""Ports for the servers started here come from outside the ephemeral range, so no outgoing
connection can take one before its server binds it."""

from __future__ import annotations

import socket

from pocdojo.core.netports import ephemeral_range, free_port_with_twin, free_ports, free_run


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_ports_are_free_distinct_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    assert 0 < low <= high <= 65535
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(not low <= port <= high for port in ports), (low, high, ports)
    assert all(_free(port) for port in ports)


def test_a_run_and_a_twin_are_free_together() -> None:
    low, high = ephemeral_range()
    first = free_run(4)
    assert all(_free(port) and not low <= port <= high for port in range(first, first + 4))
    taken = set(free_ports(3))
    port = free_port_with_twin(10000, taken)
    assert port not in taken
    assert port + 10000 not in taken
    assert _free(port)
    assert _free(port + 10000)
    assert not low <= port + 10000 <= high
