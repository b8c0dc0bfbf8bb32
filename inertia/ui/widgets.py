"""Validation errors that name the input, in plain text: ``"Steps: Value 0 is less than minimum value 1."``.

Gradio checks slider and number bounds and dropdown / radio choices itself, before the event function runs, with
messages that do not say which input was wrong; a number field given text (``"abc"`` through the API) raises a bare
``TypeError`` with a server traceback, and a whole-number field rounds ``1.5`` to 2 without a word.
:func:`label_errors` wraps the ``preprocess`` of the given component instances so that every such input is refused
with one message that starts with the component's label. (Instances, not subclasses: Gradio writes a ``.pyi`` stub
next to the source file of every Component subclass it sees defined.)

Gradio shows an error message as HTML. :func:`plain_message` writes the few characters HTML would read as markup as
Unicode instead (``>=`` as ``≥``), so the browser and an API client see the same text and nothing is escaped.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from collections.abc import Callable
from typing import Any

__all__ = ["accept_whole_numbers_as_text", "label_errors", "plain_message", "user_error"]

_TYPE_NOTE = re.compile(r" \(type: <class '[^']*'>\)")
_PLAIN = (("<=", "≤"), (">=", "≥"), ("!=", "≠"), ("<", "‹"), (">", "›"), ("&", "and"))


def plain_message(text: str) -> str:
    """``text`` with no character an HTML renderer would read as markup (``<``, ``>``, ``&``).

    Example:
        >>> plain_message("Seed must be an integer >= 0, got -1.")
        'Seed must be an integer ≥ 0, got -1.'
    """
    for markup, plain in _PLAIN:
        text = text.replace(markup, plain)
    return text


def user_error(message: str) -> Any:
    """The ``gr.Error`` the app raises for a user's mistake: titled "Invalid input", plain text, no traceback."""
    import gradio as gr

    return gr.Error(plain_message(message), title="Invalid input", print_exception=False)


def _whole_numbers_only(component: Any) -> bool:
    """Whether ``component`` takes whole numbers only: a ``Number`` with precision 0, or a slider whose minimum and
    step are whole."""
    import gradio as gr

    if isinstance(component, gr.Number):
        return component.precision == 0
    step, minimum = getattr(component, "step", None), getattr(component, "minimum", None)
    return isinstance(step, int | float) and float(step).is_integer() and float(minimum or 0).is_integer()


def _check_number(component: Any, label: Any, payload: Any) -> None:
    """Refuses what a number field must not take: text, booleans, NaN, infinities, and fractions where only whole
    numbers make sense (before Gradio rounds them)."""
    if payload is None or not _is_number_field(component):
        return
    if isinstance(payload, bool) or not isinstance(payload, numbers.Real) or not math.isfinite(float(payload)):
        raise user_error(f"{label} must be a number, got {payload!r}.")
    if _whole_numbers_only(component) and not float(payload).is_integer():
        raise user_error(f"{label} must be a whole number, got {payload!r}.")


def _is_number_field(component: Any) -> bool:
    import gradio as gr

    return isinstance(component, gr.Number | gr.Slider)


def label_errors(*components: Any) -> None:
    """Makes each component's validation errors one plain message that starts with its label (in place): Gradio's
    bound and choice checks, and for number fields text, NaN and fractions in whole-number fields."""
    import gradio as gr

    for component in components:
        original: Callable[[Any], Any] = component.preprocess
        label = component.label

        @functools.wraps(original)
        def preprocess(
            payload: Any, _original: Callable[[Any], Any] = original, _label: Any = label, _component: Any = component
        ) -> Any:
            _check_number(_component, _label, payload)
            try:
                return _original(payload)
            except gr.Error as err:
                # Gradio's own messages say "(type: <class 'int'>)": drop that, and write the rest as plain text
                raise user_error(_TYPE_NOTE.sub("", f"{_label}: {err.message}")) from None
            except (TypeError, ValueError):  # a value of the wrong kind, which Gradio does not check itself
                raise user_error(f"{_label}: not a valid value: {payload!r}.") from None

        component.preprocess = preprocess


def accept_whole_numbers_as_text(component: Any) -> None:
    """Lets a component with string choices (a digit ``Radio``) also take the integer ``7`` for ``"7"`` (in place).

    The API documents the choices as strings; scripts written against the integer-valued version keep working.
    """
    original: Callable[[Any], Any] = component.preprocess

    @functools.wraps(original)
    def preprocess(payload: Any, _original: Callable[[Any], Any] = original) -> Any:
        if isinstance(payload, int) and not isinstance(payload, bool):
            payload = str(payload)
        return _original(payload)

    component.preprocess = preprocess
