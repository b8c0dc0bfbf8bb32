"""The Text tab's llama.cpp backend: the embedded GGUF loaded once per process by llama-cpp-python, and a stream
that yields what the tab's transformers stream yields (the text as it grows, then the text and its figures).

Nothing here imports Gradio or llama-cpp-python at import time; every error a user can fix is a `UserInputError`.

Example:
    >>> llama_cpp_sides("contrastive", "momentum", 0.2, 5, "off")
    Traceback (most recent call last):
    ...
    inertia.ui.models.UserInputError: Method A: `method`='contrastive' is not available with the llama.cpp backend \
(it runs on transformers only); with llama.cpp use one of dry, frequency_penalty, greedy, momentum, \
momentum_penalty, nucleus, presence_penalty, repetition_penalty, top_k.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from inertia.adapters.llama_cpp.availability import LlamaCppNotInstalledError
from inertia.pipelines.llama_cpp_text import check_llama_cpp_request
from inertia.pipelines.text_generation import PARAM_RANGES
from inertia.ui.fields import user_float, user_int
from inertia.ui.models import TextModel, UserInputError

__all__ = ["LLAMA_CPP_ONLY_METHODS", "llama_cpp_sides", "llama_cpp_text_model", "stream_one_llama_cpp"]

LLAMA_CPP_ONLY_METHODS = ("presence_penalty", "frequency_penalty", "dry")
"""Methods the tab offers with the llama.cpp backend only (llama.cpp's own samplers)."""

_MODELS: dict[str, TextModel] = {}
_LOADING = threading.Lock()


def llama_cpp_sides(
    method_a: str, method_b: str, alpha: float, top_k: int, attention_b: str
) -> dict[str, tuple[str, dict[str, Any], str]]:
    """``{"A": (method, params, "off"), "B": ...}`` for the llama.cpp backend, checked (α and top-k go to momentum
    decoding, α to the momentum penalty; the other methods run at their defaults).

    Raises:
        UserInputError: a method llama.cpp does not offer, momentum attention, or llama-cpp-python not installed.
    """
    sides, missing = {}, None
    for side, method in (("A", method_a), ("B", method_b)):
        params: dict[str, Any] = {}
        if method == "momentum":
            ranges = PARAM_RANGES["momentum"]  # the sliders' ranges, as on the transformers backend
            params = {
                "alpha": user_float("Momentum α", alpha, *ranges["alpha"]),
                "top_k": user_int("Momentum top-k", top_k, int(ranges["top_k"][0]), int(ranges["top_k"][1])),
            }
        elif method == "momentum_penalty":
            params = {"alpha": user_float("Momentum α", alpha, *PARAM_RANGES["momentum_penalty"]["alpha"])}
        try:
            check_llama_cpp_request(method, params, attention=attention_b if side == "B" else "off")
        except LlamaCppNotInstalledError as err:  # raised once this side's arguments are known to be fine
            missing = err
        except ValueError as err:
            raise UserInputError(f"Method {side}: {err}") from None
        sides[side] = (method, params, attention_b if side == "B" else "off")
    if missing is not None:
        raise UserInputError(str(missing)) from None
    return sides


def llama_cpp_text_model(device: Any) -> TextModel:
    """The embedded GGUF in llama.cpp, loaded on first use (a fraction of a second) and kept, with its lock.

    Raises:
        UserInputError: the model could not be loaded (the message says why).
    """
    key = "cpu" if getattr(device, "type", str(device)) == "cpu" else "auto"
    with _LOADING:
        if key not in _MODELS:
            from inertia.pipelines.llama_cpp_text import load_llama_cpp_model

            try:
                llama = load_llama_cpp_model(device="cpu" if key == "cpu" else None)
            except Exception as err:
                message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise UserInputError(f"Could not load the llama.cpp model: {message}") from err
            _MODELS[key] = TextModel(model=llama, tokenizer=None)
        return _MODELS[key]


def stream_one_llama_cpp(
    text_model: TextModel,
    prompt: str,
    method: str,
    params: dict[str, Any],
    max_new_tokens: int,
    seed: int,
    attention: str = "off",
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Yields ``(text so far, None)`` while generating, then ``(final text, figures)``. Call under the model's lock."""
    from inertia.metrics.text import repetition_stats, tokens_per_second
    from inertia.pipelines.llama_cpp_text import stream_text_llama_cpp

    start = time.perf_counter()
    text, count = "", 0
    try:
        for text_so_far, so_far in stream_text_llama_cpp(
            text_model.model, prompt, method, max_new_tokens, seed, **params
        ):
            text, count = text_so_far, so_far
            yield text, None
    except ValueError as err:  # e.g. a prompt longer than the context
        raise UserInputError(f"{method} decoding failed: {err}") from err
    seconds = time.perf_counter() - start
    figures = {
        "method": method,
        "params": params,
        "attention": attention,
        "new_tokens": count,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens_per_second(count, max(seconds, 1e-9)), 2),
        **(repetition_stats(text) if text.strip() else {"rep-2": 0.0, "rep-3": 0.0, "rep-4": 0.0, "diversity": 1.0}),
    }
    yield text, figures
