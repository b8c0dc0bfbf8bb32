"""What both llama-cpp-python processors share: a cache per thread that copies and pickles leave behind, and the
check of llama-cpp-python's 1-D calling convention.

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
from typing import Any, TypeVar

import numpy as np

__all__ = ["PerThreadCache", "check_one_row"]

T = TypeVar("T")


class PerThreadCache:
    """Base of a processor whose cache lives one per thread (concurrent completions never share one); a copy or a
    pickle starts with none, since a cache is only ever a speed-up."""

    def __init__(self) -> None:
        self._local = threading.local()

    def cached(self, make: Callable[[], T]) -> T:
        """This thread's cache, made by ``make`` on first use."""
        value = getattr(self._local, "value", None)
        if value is None:
            value = self._local.value = make()
        return value

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["_local"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


def check_one_row(owner: str, input_ids: Any, scores: Any) -> None:
    """Raises unless ``input_ids`` is ``[T]`` and ``scores`` ``[V]`` (llama-cpp-python's convention)."""
    if np.ndim(input_ids) != 1 or np.ndim(scores) != 1:
        raise ValueError(
            f"{owner} expects input_ids [T] and scores [V] (llama-cpp-python's convention), got shapes "
            f"{np.shape(input_ids)} and {np.shape(scores)}."
        )
