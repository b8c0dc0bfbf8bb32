"""Validation errors that name the input: ``"Steps: Value 0 is less than minimum value 1."``.

Gradio checks slider and number bounds and dropdown / radio choices itself, before the event function runs, with
messages that do not say which input was wrong. :func:`label_errors` wraps the ``preprocess`` of the given component
instances so that those messages start with the component's label. (Instances, not subclasses: Gradio writes a
``.pyi`` stub next to the source file of every Component subclass it sees defined.)
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import Any

__all__ = ["label_errors"]


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
                message = html.escape(f"{_label}: {err.message}", quote=False)  # shown as HTML in the browser
                raise gr.Error(message, title="Invalid input", print_exception=False) from None

        component.preprocess = preprocess
