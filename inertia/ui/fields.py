"""Checks of the UI's fields: the core's parameter checks (:mod:`inertia.core.validation`), raising `UserInputError`
so that the app shows the message instead of a traceback.

Example:
    >>> user_int("Steps", 20.0, 1, 200)
    20
    >>> user_float("Guidance scale", "abc", 0.0, 30.0)
    Traceback (most recent call last):
    ...
    inertia.ui.models.UserInputError: Guidance scale must be a finite number in [0.0, 30.0], got 'abc'.
"""

from __future__ import annotations

from typing import Any

from inertia.core.validation import check_choice, check_int, check_range
from inertia.ui.models import UserInputError

__all__ = ["user_choice", "user_float", "user_int"]


def user_int(name: str, value: Any, low: int, high: int) -> int:
    """:func:`~inertia.core.validation.check_int` for a UI field (3.0 counts as 3), raising `UserInputError`."""
    try:
        return check_int(name, value, low, high, whole_floats=True)
    except ValueError as err:
        raise UserInputError(str(err)) from None


def user_float(name: str, value: Any, low: float, high: float) -> float:
    """:func:`~inertia.core.validation.check_range` for a UI field, raising `UserInputError`."""
    try:
        return check_range(name, value, low, high)
    except ValueError as err:
        raise UserInputError(str(err)) from None


def user_choice(name: str, value: Any, registry: dict[str, str]) -> str:
    """:func:`~inertia.core.validation.check_choice` for a UI field, raising `UserInputError`."""
    try:
        return str(check_choice(name, value, registry))
    except ValueError as err:
        raise UserInputError(str(err)) from None
