"""The per-thread cache and the 1-D check that both llama-cpp-python processors share."""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest

from inertia.adapters.llama_cpp.thread_cache import PerThreadCache, check_one_row


class Holder(PerThreadCache):
    def __init__(self) -> None:
        super().__init__()
        self.name = "kept"


def test_one_cache_per_thread_made_once() -> None:
    holder = Holder()
    mine = holder.cached(list)
    assert holder.cached(list) is mine
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(holder.cached(list)))
    thread.start()
    thread.join()
    assert other[0] is not mine


def test_copies_and_pickles_start_without_a_cache() -> None:
    holder = Holder()
    holder.cached(list).append(1)
    for clone in (copy.deepcopy(holder), pickle.loads(pickle.dumps(holder))):
        assert clone.name == "kept" and clone.cached(list) == []
    assert holder.cached(list) == [1]


def test_two_dimensional_arrays_are_named() -> None:
    check_one_row("P", np.zeros(3, dtype=np.intc), np.zeros(5, dtype=np.single))
    with pytest.raises(ValueError, match=r"P expects input_ids \[T\] and scores \[V\].*\(1, 3\) and \(5,\)"):
        check_one_row("P", np.zeros((1, 3)), np.zeros(5))
