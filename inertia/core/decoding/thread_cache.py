"""A cache per thread for the incremental decoding indexes, left behind by copies and pickles.

The incremental n-gram indexes (:class:`~inertia.core.decoding.ngram_index.IncrementalLevels`,
:class:`~inertia.core.decoding.penalty_index.IncrementalPenalty`) follow one generation at a time. A processor object
may serve several threads at once (a server's workers, a UI's queue), so each thread gets its own index, and a copy
or a pickle of the processor starts with none: an index is only ever a speed-up, never part of the method's state.
The transformers and llama.cpp processors both build on :class:`PerThreadCache`.

Example:
    >>> class Counter(PerThreadCache):
    ...     pass
    >>> counter = Counter()
    >>> counter.cached(list) is counter.cached(list)   # made once per thread, then reused
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["PerThreadCache"]

T = TypeVar("T")


class PerThreadCache:
    """Base of an object whose cache lives one per thread; a copy or a pickle starts with none."""

    def __init__(self) -> None:
        self._local = threading.local()

    def cached(self, make: Callable[[], T]) -> T:
        """This thread's cache, made by ``make()`` on the thread's first call."""
        value = getattr(self._local, "cache", None)
        if value is None:
            value = self._local.cache = make()
        return value

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["_local"]  # a copy or a pickle starts with no cache (a cache is only ever a speed-up)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()
