"""The GC tuner moves survivors out of the collector's way and gives them back on stop."""

from __future__ import annotations

import gc
import weakref

from pocdojo.core.gctune import GcTuner
from tests.helpers import wait_until


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can free it


async def test_survivors_are_frozen_and_released_on_stop() -> None:
    assert gc.get_freeze_count() == 0
    keep = [_Node() for _ in range(1000)]
    tuner = GcTuner(freeze_every=0.05, full_every=0.2)
    tuner.start()
    try:
        frozen = gc.get_freeze_count()
        assert frozen >= len(keep)
        # Objects made after the start are frozen by a later round.
        more = [_Node() for _ in range(1000)]
        target = frozen + len(more)
        await wait_until(lambda: gc.get_freeze_count() >= target, within=5)
    finally:
        await tuner.stop()
    assert gc.get_freeze_count() == 0


async def test_frozen_cycles_wait_for_the_full_collection() -> None:
    tuner = GcTuner(freeze_every=0.05, full_every=3600)
    tuner.start()
    garbage = _Node()
    ref = weakref.ref(garbage)
    frozen = gc.get_freeze_count()
    try:
        await wait_until(lambda: gc.get_freeze_count() > frozen, within=5)
        del garbage  # unreachable now, but frozen: ordinary collections skip it
        gc.collect()
        assert ref() is not None
    finally:
        await tuner.stop()
    # A tuner whose full collection comes soon reclaims it.
    tuner = GcTuner(freeze_every=0.05, full_every=0.1)
    tuner.start()
    try:
        gc.freeze()  # as the first tuner had it
        await wait_until(lambda: ref() is None, within=5)
    finally:
        await tuner.stop()
