"""Validation errors that name the input: ``"Steps: Value 0 is less than minimum value 1."``.

Gradio checks slider and number bounds and dropdown / radio choices itself, before the event function runs, with
messages that do not say which input was wrong. :func:`label_errors` wraps the ``preprocess`` of the given component
instances so that those messages start with the component's label. (Instances, not subclasses: Gradio writes a
``.pyi`` stub next to the source file of every Component subclass it sees defined.)
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from typing import Any

__all__ = ["accept_whole_numbers_as_text", "label_errors"]

_TYPE_NOTE = re.compile(r" \(type: <class '[^']*'>\)")
_NEEDS_ESCAPE = re.compile(r"[<>&]")


def label_errors(*components: Any) -> None:
    """Makes each component's validation errors start with its label (in place)."""
    import gradio as gr

    for component in components:
        original: Callable[[Any], Any] = component.preprocess
        label = component.label

        @functools.wraps(original)
        def preprocess(payload: Any, _original: Callable[[Any], Any] = original, _label: Any = label) -> Any:
            try:
                return _original(payload)
            except gr.Error as err:
                # Gradio's own messages say "(type: <class 'int'>)": drop that, so that nothing needs HTML escaping
                # (the browser renders the message as HTML; an API client would see the escapes).
                text = _TYPE_NOTE.sub("", f"{_label}: {err.message}")
                message = html.escape(text, quote=False) if _NEEDS_ESCAPE.search(text) else text
                raise gr.Error(message, title="Invalid input", print_exception=False) from None

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
