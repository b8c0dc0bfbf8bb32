"""The check of llama-cpp-python's 1-D calling convention that both llama.cpp processors run first.

Example:
    >>> import numpy as np
    >>> check_one_row("P", np.zeros(3, dtype=np.intc), np.zeros(5, dtype=np.single))   # [T] and [V]: passes
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_one_row"]


def check_one_row(owner: str, input_ids: Any, scores: Any) -> None:
    """Raises unless ``input_ids`` is ``[T]`` and ``scores`` ``[V]`` (llama-cpp-python's convention)."""
    if np.ndim(input_ids) != 1 or np.ndim(scores) != 1:
        raise ValueError(
            f"{owner} expects input_ids [T] and scores [V] (llama-cpp-python's convention), got shapes "
            f"{np.shape(input_ids)} and {np.shape(scores)}."
        )
