"""The Text tab: one prompt continued by two decoding methods side by side, streamed token by token, with repeated
n-grams highlighted and rep-n, diversity and tokens per second for each.

Example:
    >>> highlight_repeats("the cat sat the cat sat on", n=3)
    [('the cat sat ', None), ('the cat sat', 'repeat'), (' on', None)]
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from inertia.core.lm_attention.config import LM_ATTENTION_PRESETS, parse_lm_attention
from inertia.pipelines.limits import MAX_SEED
from inertia.pipelines.llama_cpp_text import LLAMA_CPP_BACKEND, TEXT_BACKENDS
from inertia.pipelines.text_generation import PARAM_RANGES, TEXT_METHODS
from inertia.ui.fields import user_choice, user_float, user_int
from inertia.ui.llama_cpp_text import (
    LLAMA_CPP_ONLY_METHODS,
    llama_cpp_sides,
    llama_cpp_text_model,
    stream_one_llama_cpp,
)
from inertia.ui.models import ModelStore, TextModel, UserInputError

__all__ = ["REPEAT_LABEL", "build_text_tab", "highlight_repeats", "stream_comparison"]

REPEAT_LABEL = "repeat"
"""HighlightedText label of the words inside a repeated n-gram."""
MAX_NEW_TOKENS = 256
MAX_PROMPT_CHARS = 2000
_PIECES = re.compile(r"\s+|\S+")


def highlight_repeats(text: str, n: int = 3) -> list[tuple[str, str | None]]:
    """Splits ``text`` into ``(piece, label)`` runs, labelling ``"repeat"`` every word of an n-gram that already
    occurred earlier in the text (whitespace words, as rep-n counts them)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be an int >= 1, got {n!r}.")
    pieces = _PIECES.findall(text)
    words = [i for i, piece in enumerate(pieces) if not piece.isspace()]
    repeated = [False] * len(words)
    seen: set[tuple[str, ...]] = set()
    for start in range(len(words) - n + 1):
        gram = tuple(pieces[words[j]] for j in range(start, start + n))
        if gram in seen:
            repeated[start : start + n] = [True] * n
        seen.add(gram)
    labels: list[str | None] = [None] * len(pieces)
    for word_index, piece_index in enumerate(words):
        if repeated[word_index]:
            labels[piece_index] = REPEAT_LABEL
    for i, piece in enumerate(pieces):  # whitespace between two repeated words joins their highlight
        if piece.isspace() and 0 < i < len(pieces) - 1 and labels[i - 1] and labels[i + 1]:
            labels[i] = REPEAT_LABEL
    runs: list[tuple[str, str | None]] = []
    for piece, label in zip(pieces, labels, strict=True):
        if runs and runs[-1][1] == label:
            runs[-1] = (runs[-1][0] + piece, label)
        else:
            runs.append((piece, label))
    return runs


def _method_params(method: str, alpha: float, top_k: int) -> dict[str, Any]:
    """The slider values a method takes: α and top-k for momentum decoding, α for the momentum penalty (its top-p
    stays at its default), none for the others (their defaults)."""
    if method not in TEXT_METHODS:
        user_choice("Decoding method", method, dict.fromkeys(TEXT_METHODS, ""))
    if method == "momentum_penalty":
        return {"alpha": user_float("Momentum α", alpha, *PARAM_RANGES["momentum_penalty"]["alpha"])}
    if method != "momentum":
        return {}
    ranges = PARAM_RANGES["momentum"]  # the CLI's --param ranges too
    return {
        "alpha": user_float("Momentum α", alpha, *ranges["alpha"]),
        "top_k": user_int("Momentum top-k", top_k, *map(int, ranges["top_k"])),
    }


def _streamer(tokenizer: Any) -> Any:
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        """A `TextIteratorStreamer` that also counts the generated tokens (the prompt excluded)."""

        new_tokens = 0

        def put(self, value: Any) -> None:
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.new_tokens += int(value.numel())
            super().put(value)

    return CountingStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _stream_one(
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
    from inertia.pipelines.text_generation import generate_text

    streamer = _streamer(text_model.tokenizer)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["text"] = generate_text(
                text_model.model,
                text_model.tokenizer,
                prompt,
                method=method,
                max_new_tokens=max_new_tokens,
                seed=seed,
                streamer=streamer,
                attention=attention,
                **params,
            )
        except Exception as err:  # reported to the user below
            box["error"] = err
            streamer.end()

    thread = threading.Thread(target=target, name=f"inertia-ui-{method}", daemon=True)
    start = time.perf_counter()
    thread.start()
    text = ""
    try:
        for chunk in streamer:
            text += chunk
            yield text, None
    finally:
        thread.join()
    seconds = time.perf_counter() - start
    if "error" in box:
        raise UserInputError(f"{method} decoding failed: {box['error']}") from box["error"]
    final = box["text"]
    figures = {
        "method": method,
        "params": params,
        "attention": attention,
        "new_tokens": streamer.new_tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens_per_second(streamer.new_tokens, max(seconds, 1e-9)), 2),
        **(repetition_stats(final) if final.strip() else {"rep-2": 0.0, "rep-3": 0.0, "rep-4": 0.0, "diversity": 1.0}),
    }
    yield final, figures


def _table(figures: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| side | method | tokens | tokens/s | rep-2 | rep-3 | rep-4 | diversity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for side, f in figures.items():
        params = ", ".join(f"{k}={v}" for k, v in f["params"].items())
        method = f"`{f['method']}`" + (f" ({params})" if params else "")
        if f.get("attention", "off") != "off":
            method += f" + momentum attention `{f['attention']}`"
        rows.append(
            f"| {side} | {method} | {f['new_tokens']} | {f['tokens_per_second']:.1f} | {f['rep-2']:.1f} | "
            f"{f['rep-3']:.1f} | {f['rep-4']:.1f} | {f['diversity']:.3f} |"
        )
    return "\n".join(rows)


def stream_comparison(
    store: ModelStore,
    prompt: str = "The old lighthouse keeper",
    method_a: str = "greedy",
    method_b: str = "momentum",
    alpha: float = 0.2,
    top_k: int = 5,
    max_new_tokens: int = 64,
    seed: int = 0,
    highlight_n: int = 3,
    attention_b: str = "off",
    backend: str = "transformers",
) -> Iterator[tuple[list[tuple[str, str | None]], list[tuple[str, str | None]], str, dict[str, Any]]]:
    """Continues ``prompt`` with ``method_a`` then ``method_b``, yielding the two highlighted texts as they grow, a
    Markdown table and the figures (rep-n and diversity on each continuation, tokens per second). ``attention_b``
    switches Dai et al.'s momentum attention on for side B only (``"off"``, ``"momentum"``, ``"momentum:<eta>"``).
    ``backend`` runs both sides on transformers or on llama.cpp (:mod:`inertia.ui.llama_cpp_text`).

    Raises:
        UserInputError: an invalid input, before any generation.
    """
    prompt = prompt or ""
    if not prompt.strip():
        raise UserInputError("Enter a prompt to continue.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserInputError(f"The prompt must be at most {MAX_PROMPT_CHARS} characters, got {len(prompt)}.")
    max_new_tokens = user_int("Max new tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    seed = user_int("Seed", seed, 0, MAX_SEED)
    n = user_int("Highlight n", highlight_n, 1, 8)
    try:
        parse_lm_attention(attention_b)
    except ValueError as err:
        raise UserInputError(f"Momentum attention (B): {err}") from None
    backend = user_choice("Backend", backend, dict.fromkeys(TEXT_BACKENDS, ""))
    stream_one = _stream_one
    if backend == LLAMA_CPP_BACKEND:
        sides = llama_cpp_sides(method_a, method_b, alpha, top_k, attention_b)
        text_model, stream_one = llama_cpp_text_model(store.device), stream_one_llama_cpp
    else:
        sides = {
            "A": (method_a, _method_params(method_a, alpha, top_k), "off"),
            "B": (method_b, _method_params(method_b, alpha, top_k), attention_b),
        }
        text_model = store.text()
    texts = {"A": "", "B": ""}
    figures: dict[str, dict[str, Any]] = {}

    def state() -> tuple[Any, ...]:
        summary = {"device": str(store.device), "max_new_tokens": max_new_tokens, "seed": seed, "runs": figures}
        summary["backend"] = backend
        return highlight_repeats(texts["A"], n), highlight_repeats(texts["B"], n), _table(figures), summary

    with text_model.lock:
        for side, (method, params, attention) in sides.items():
            for text, result in stream_one(text_model, prompt, method, params, max_new_tokens, seed, attention):
                texts[side] = text
                if result is not None:
                    figures[side] = result
                yield state()


def build_text_tab(store: ModelStore) -> dict[str, Any]:
    """Lays out the Text tab inside the current ``gr.Blocks`` / ``gr.Tab``; returns its components by name."""
    import gradio as gr

    from inertia.ui.widgets import label_errors, user_error

    def run(
        prompt: str,
        method_a: str,
        method_b: str,
        alpha: float,
        top_k: int,
        max_new_tokens: int,
        seed: int,
        highlight_n: int,
        attention_b: str,
        backend: str = "transformers",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's convention)
    ) -> Iterator[tuple[Any, ...]]:
        try:
            if not store.text_loaded and backend != LLAMA_CPP_BACKEND:
                progress(0, desc="loading the text model (first use: about 20 s on a CPU)")
            yield from stream_comparison(
                store,
                prompt,
                method_a,
                method_b,
                alpha,
                top_k,
                max_new_tokens,
                seed,
                highlight_n,
                attention_b,
                backend,
            )
        except UserInputError as err:
            raise user_error(str(err)) from None

    methods = [*TEXT_METHODS, *LLAMA_CPP_ONLY_METHODS]
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = gr.Textbox(
                "The old lighthouse keeper", label="Prompt", lines=3, elem_id="text-prompt", max_length=2000
            )
            with gr.Row():
                method_a = gr.Dropdown(methods, value="greedy", label="Method A (left)")
                method_b = gr.Dropdown(methods, value="momentum", label="Method B (right)")
            with gr.Row():
                alpha_range, top_k_range = PARAM_RANGES["momentum"]["alpha"], PARAM_RANGES["momentum"]["top_k"]
                alpha = gr.Slider(
                    *alpha_range,
                    value=0.2,
                    step=0.05,
                    label="Momentum α (resistance)",
                    info="momentum and momentum_penalty (nats per unit of resistance there)",
                )
                top_k = gr.Slider(*top_k_range, value=5, step=1, label="Momentum top-k", info="momentum only")
            with gr.Row():
                max_new_tokens = gr.Slider(
                    1, MAX_NEW_TOKENS, value=64, step=1, label="Max new tokens", elem_id="text-max-new-tokens"
                )
                seed = gr.Number(0, label="Seed (sampling methods)", precision=0, minimum=0)
                highlight_n = gr.Slider(2, 6, value=3, step=1, label="Highlight repeated n-grams, n =")
            attention_b = gr.Dropdown(
                list(LM_ATTENTION_PRESETS),
                value="off",
                label="Momentum attention on B (Dai et al.; experimental, training-free it does not help)",
                elem_id="text-attention",
                allow_custom_value=True,  # momentum:<eta> too; checked by the tab
            )
            backend = gr.Radio(
                list(TEXT_BACKENDS),
                value="transformers",
                label="Backend (llama.cpp: the GGUF as shipped, several times faster; needs inertia[llama])",
                elem_id="text-backend",
            )
            button = gr.Button("Generate", variant="primary", elem_id="text-generate")
        with gr.Column(scale=3, min_width=320):
            with gr.Row(equal_height=True):
                colours = {REPEAT_LABEL: "#f59e0b"}
                # no legend: it would show a "repeat" chip on text without repeats; repeats carry their own label
                out_a = gr.HighlightedText(
                    label="Method A (repeated n-grams highlighted)",
                    color_map=colours,
                    show_legend=False,
                    combine_adjacent=True,
                    elem_id="text-a",
                )
                out_b = gr.HighlightedText(
                    label="Method B (repeated n-grams highlighted)",
                    color_map=colours,
                    show_legend=False,
                    combine_adjacent=True,
                    elem_id="text-b",
                )
            table = gr.Markdown(elem_id="text-figures")
            with gr.Accordion("Figures (JSON)", open=False):
                figures = gr.JSON(label="figures")
    inputs = [prompt, method_a, method_b, alpha, top_k, max_new_tokens, seed, highlight_n, attention_b, backend]
    label_errors(*inputs[1:])
    button.click(run, inputs, [out_a, out_b, table, figures], api_name="generate_text", concurrency_id="models")
    return {"inputs": inputs, "a": out_a, "b": out_b, "table": table, "figures": figures}
