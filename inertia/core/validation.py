"""The parameter checks of every layer: one place for how inertia says a parameter is wrong.

Each check returns the value (converted: a float, an int, the choice) or raises a ``ValueError`` that names the
parameter, repeats the value and states the valid range, before any work is done. Names are shown in backticks
(``momentum_beta``), except command-line flags (``--steps``) and UI labels (``Guidance scale``), which are shown as
they are. Pure standard library, so the CLI and the UI run them before torch or a model loads.

Example:
    >>> check_range("eta", 0.5, 0, 1, high_open=True)
    0.5
    >>> check_range("eta", 1.0, 0, 1, high_open=True)
    Traceback (most recent call last):
    ...
    ValueError: `eta` must be in [0, 1), got 1.0.
    >>> check_choice("space", "x0", ("x0", "model_output"))
    'x0'
    >>> validate_top_k(0)
    Traceback (most recent call last):
    ...
    ValueError: `top_k` must be an integer >= 1 (the paper uses 5), got 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeVar, cast

Choice = TypeVar("Choice")

__all__ = [
    "check_choice",
    "check_int",
    "check_range",
    "check_real",
    "interval",
    "shown",
    "validate_alpha",
    "validate_penalty_alpha",
    "validate_top_k",
]


def shown(name: str) -> str:
    """How a parameter is named in a message: ```name``` for a Python parameter, as is for a flag or a UI label."""
    return name if name.startswith(("-", "`")) or " " in name or name[:1].isupper() else f"`{name}`"


def interval(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> str:
    """``[low, high]`` with open ends where asked (an infinite end is always open).

    Example:
        >>> interval(0, math.inf, low_open=True)
        '(0, inf)'
    """
    left = "(" if low_open or low == -math.inf else "["
    right = ")" if high_open or high == math.inf else "]"
    return f"{left}{low}, {high}{right}"


def check_real(name: str, value: Any, *, finite: bool = True) -> float:
    """``value`` as a float if it is a real number (not a bool, not NaN; finite unless ``finite=False``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise ValueError(f"{shown(name)} must be a {'finite ' if finite else ''}real number, got {value!r}.")
    if finite and not math.isfinite(float(value)):
        raise ValueError(f"{shown(name)} must be a finite real number, got {value!r}.")
    return float(value)


def check_range(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a float if it is a real number in the interval ``low``..``high`` (ends closed unless open)."""
    span = interval(low, high, low_open=low_open, high_open=high_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise ValueError(f"{shown(name)} must be a {'finite ' if finite else ''}number in {span}, got {value!r}.")
    number = float(value)
    if finite and not math.isfinite(number):
        raise ValueError(f"{shown(name)} must be a finite number in {span}, got {value!r}.")
    above = number > low if low_open else number >= low
    below = number < high if high_open else number <= high
    if not (above and below):
        raise ValueError(f"{shown(name)} must be in {span}, got {value!r}.")
    return number


def check_int(name: str, value: Any, low: int, high: float = math.inf, *, whole_floats: bool = False) -> int:
    """``value`` as an int if it is an integer in ``[low, high]`` (``whole_floats``: 3.0 counts as 3, as UI number
    fields send it)."""
    if whole_floats and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= int(value) <= high:
        span = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{shown(name)} must be an integer {span}, got {value!r}.")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[Choice]) -> Choice:
    """``value`` if it is one of ``choices``."""
    options = tuple(choices)
    if value not in options:
        raise ValueError(f"{shown(name)} must be one of {', '.join(map(repr, options))}, got {value!r}.")
    return cast(Choice, value)  # one of `choices`


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
