"""Checks of the decoding parameters, free of torch and transformers (the CLI runs them before loading a model).

Example:
    >>> validate_alpha(0.2)
    0.2
    >>> validate_top_k(0)
    Traceback (most recent call last):
    ...
    ValueError: `top_k` must be an integer >= 1 (the paper uses 5), got 0.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["validate_alpha", "validate_penalty_alpha", "validate_top_k"]


def validate_alpha(alpha: Any, name: str = "alpha") -> float:
    """Checks momentum decoding's resistance weight α (a finite number ≥ 0) and returns it as a float."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0 (the paper uses 0.2), got {alpha!r}.")
    return float(alpha)


def validate_top_k(top_k: Any, name: str = "top_k") -> int:
    """Checks a candidate-pool size k (an integer ≥ 1) and returns it."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`{name}` must be an integer >= 1 (the paper uses 5), got {top_k!r}.")
    return top_k


def validate_penalty_alpha(penalty_alpha: Any, name: str = "penalty_alpha") -> float:
    """Checks contrastive search's degeneration-penalty weight α (a number in [0, 1]) and returns it as a float."""
    if (
        isinstance(penalty_alpha, bool)
        or not isinstance(penalty_alpha, int | float)
        or not math.isfinite(penalty_alpha)
        or not 0.0 <= penalty_alpha <= 1.0
    ):
        raise ValueError(f"`{name}` must be a number in [0, 1] (Su et al. use 0.6), got {penalty_alpha!r}.")
    return float(penalty_alpha)
