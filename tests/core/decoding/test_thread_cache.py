"""PerThreadCache: one cache per thread, none in copies and pickles."""

from __future__ import annotations

import copy
import pickle
import threading

from inertia.core.decoding.thread_cache import PerThreadCache


class Holder(PerThreadCache):
    def __init__(self) -> None:
        super().__init__()
        self.name = "kept"


def test_one_cache_per_thread_made_once() -> None:
    holder = Holder()
    made: list[list[int]] = []

    def make() -> list[int]:
        made.append([])
        return made[-1]

    mine = holder.cached(make)
    assert holder.cached(make) is mine and len(made) == 1
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(holder.cached(make)))
    thread.start()
    thread.join()
    assert len(made) == 2 and other[0] is made[1] and other[0] is not mine


def test_copies_and_pickles_start_without_a_cache() -> None:
    holder = Holder()
    holder.cached(list).append(1)
    for clone in (copy.copy(holder), copy.deepcopy(holder), pickle.loads(pickle.dumps(holder))):
        assert clone.name == "kept" and clone.cached(list) == []
    assert holder.cached(list) == [1]
