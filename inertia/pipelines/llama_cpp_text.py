"""The llama.cpp text backend of the CLI and the UI: the embedded SmolLM2 GGUF run by llama-cpp-python, with greedy
search, momentum decoding, sampling (with our momentum penalty or without) and llama.cpp's own penalties and DRY,
chosen by name.

The transformers backend (:mod:`inertia.pipelines.text_generation`) de-quantises the GGUF to float32; this one runs
it as it is shipped (Q4_1), several times faster on a CPU (docs/hosts/llama-cpp.md, "Measured"). It needs the
``llama`` extra (``pip install "inertia[llama]"``); :func:`check_llama_cpp_request` says so, and checks every
argument, without importing llama-cpp-python or torch, before any model loads.

Example:
    >>> LLAMA_CPP_METHODS["momentum"]
    {'alpha': 0.2, 'top_k': 5}
    >>> check_llama_cpp_request("contrastive", {})
    Traceback (most recent call last):
    ...
    ValueError: `method`='contrastive' is not available with the llama.cpp backend (it runs on transformers only); \
with llama.cpp use one of dry, frequency_penalty, greedy, momentum, momentum_penalty, nucleus, presence_penalty, \
repetition_penalty, top_k.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from inertia.adapters.llama_cpp.availability import require_llama_cpp
from inertia.core.validation import check_int, check_range, check_real, validate_alpha, validate_top_k
from inertia.pipelines.text_generation import PARAM_RANGES

__all__ = [
    "LLAMA_CPP_BACKEND",
    "LLAMA_CPP_METHODS",
    "TEXT_BACKENDS",
    "check_llama_cpp_request",
    "generate_text_llama_cpp",
    "load_llama_cpp_model",
    "stream_text_llama_cpp",
    "write_stream",
]

LLAMA_CPP_BACKEND = "llama.cpp"
TEXT_BACKENDS = ("transformers", LLAMA_CPP_BACKEND)
"""The text backends of the CLI (``--backend``) and the UI; transformers is the default."""

LLAMA_CPP_METHODS: dict[str, dict[str, Any]] = {
    "greedy": {},
    "momentum": {"alpha": 0.2, "top_k": 5},
    "nucleus": {"top_p": 0.95},
    # our momentum penalty in front of llama.cpp's nucleus sampling (the same method as on transformers)
    "momentum_penalty": {"alpha": 0.2, "top_p": 0.95},
    "top_k": {"top_k": 50},
    # window -1: the whole history, as transformers' repetition_penalty (llama.cpp's own default window is 64)
    "repetition_penalty": {"penalty": 1.2, "last_n": -1},
    "presence_penalty": {"penalty": 0.5, "last_n": -1},
    "frequency_penalty": {"penalty": 0.5, "last_n": -1},
    # DRY (p-e-w): its author's suggested multiplier, llama.cpp's base and allowed length, the whole history
    "dry": {"multiplier": 0.8, "base": 1.75, "allowed_length": 2},
}
"""Decoding methods of the llama.cpp backend and their parameters with defaults (same names as
:data:`inertia.pipelines.text_generation.TEXT_METHODS` where the method is the same)."""

TRANSFORMERS_ONLY = ("contrastive", "no_repeat_ngram")
"""Methods of the transformers backend that llama.cpp does not offer natively."""

SAMPLING_METHODS = ("nucleus", "top_k", "momentum_penalty")
"""Methods that sample (seeded by ``seed``)."""

N_CTX = 8192
"""Context of the loaded model in tokens (SmolLM2's training context): prompt plus new tokens must fit (the value of
:data:`inertia.adapters.llama_cpp.loading.DEFAULT_N_CTX`, kept here so the checks import nothing)."""


def check_llama_cpp_request(
    method: str,
    params: dict[str, Any],
    model: str | Path | None = None,
    attention: str = "off",
    device: str | None = None,
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """Checks a llama.cpp request without importing anything heavy; returns the method's parameters with defaults.

    Raises:
        ValueError: an unknown method, one that runs on transformers only, a parameter the method does not take or
            out of its range, momentum attention (transformers only), a model that is not a ``.gguf`` file, a
            device other than the CPU or CUDA, or more new tokens than the context holds.
        LlamaCppNotInstalledError: llama-cpp-python is not installed (a ``ValueError`` too; it names
            ``pip install "inertia[llama]"``).
    """
    if method in TRANSFORMERS_ONLY:
        raise ValueError(
            f"`method`={method!r} is not available with the llama.cpp backend (it runs on transformers only); with "
            f"llama.cpp use one of {', '.join(sorted(LLAMA_CPP_METHODS))}."
        )
    if method not in LLAMA_CPP_METHODS:
        raise ValueError(f"`method` must be one of {', '.join(sorted(LLAMA_CPP_METHODS))}, got {method!r}.")
    unknown = sorted(set(params) - set(LLAMA_CPP_METHODS[method]))
    if unknown:
        valid = sorted(LLAMA_CPP_METHODS[method]) or "none"
        raise ValueError(f"`method`={method!r} takes the parameters {valid}, got {unknown}.")
    p = {**LLAMA_CPP_METHODS[method], **params}
    if "alpha" in p and method != "momentum_penalty":
        validate_alpha(p["alpha"])
    if "top_k" in p:
        validate_top_k(p["top_k"])
    for name, (low, high) in PARAM_RANGES.get(method, {}).items():  # the products' ranges, as on transformers
        if isinstance(low, int) and isinstance(high, int):
            check_int(name, p[name], low, high)
        else:
            check_range(name, p[name], low, high)
    if "top_p" in p:
        check_range("top_p", p["top_p"], 0.0, 1.0, low_open=True)
    if method == "repetition_penalty":
        check_range("penalty", p["penalty"], 0.0, float("inf"), low_open=True)
    elif "penalty" in p:
        check_real("penalty", p["penalty"])
    if "last_n" in p:
        check_int("last_n", p["last_n"], -1, N_CTX)
    if method == "dry":
        check_range("multiplier", p["multiplier"], 0.0)
        check_range("base", p["base"], 1.0)
        check_int("allowed_length", p["allowed_length"], 1)
    if attention != "off":
        raise ValueError(
            f"--attention {attention!r}: momentum attention runs on the transformers backend only (the llama.cpp "
            "backend runs the model's own attention); use --attention off."
        )
    if model is not None and Path(model).suffix != ".gguf":
        raise ValueError(f"the llama.cpp backend loads .gguf files; --model must be one, got {str(model)!r}.")
    if model is not None and not Path(model).expanduser().is_file():
        raise FileNotFoundError(f"--model {str(model)!r} does not exist.")
    if device is not None and device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"the llama.cpp backend runs on cpu or cuda, got --device {device!r}.")
    if max_new_tokens is not None:
        check_int("--max-new-tokens", max_new_tokens, 1, N_CTX - 1)
    require_llama_cpp()
    return p


def load_llama_cpp_model(model: str | Path | None = None, device: str | None = None, n_threads: int | None = None):
    """A ``llama_cpp.Llama`` on ``model`` (``None``: the embedded SmolLM2-135M-Instruct Q4_1 GGUF), quiet, with a
    context of :data:`N_CTX` tokens; ``device`` and ``n_threads`` as for
    :func:`inertia.adapters.llama_cpp.loading.load_llama`.

    Raises:
        LlamaCppNotInstalledError: llama-cpp-python is missing.
        TextModelNotFoundError: the embedded model is not installed.
        ValueError: CUDA asked of a CPU-only build, or an invalid ``n_threads``.
    """
    require_llama_cpp()
    from inertia.adapters.llama_cpp.loading import load_llama
    from inertia.pipelines.text import smollm2_gguf_path

    return load_llama(smollm2_gguf_path() if model is None else model, device, n_threads, N_CTX)


def _tokens(llama: Any, prompt: str, method: str, params: dict[str, Any], max_new_tokens: int, seed: int):
    from inertia.adapters.llama_cpp import generate

    ids = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
    if method == "greedy":
        return generate.generate_greedy(llama, ids, max_new_tokens)
    if method == "momentum":
        return generate.generate_momentum(llama, ids, max_new_tokens, alpha=params["alpha"], top_k=params["top_k"])
    if method == "nucleus":
        return generate.generate_sampled(llama, ids, max_new_tokens, seed=seed, top_p=params["top_p"])
    if method == "momentum_penalty":
        return generate.generate_sampled(
            llama, ids, max_new_tokens, seed=seed, top_p=params["top_p"], momentum_penalty=params["alpha"]
        )
    if method == "top_k":
        return generate.generate_sampled(llama, ids, max_new_tokens, seed=seed, top_k=params["top_k"])
    if method == "dry":
        return generate.generate_penalized(
            llama,
            ids,
            max_new_tokens,
            dry_multiplier=params["multiplier"],
            dry_base=params["base"],
            dry_allowed_length=params["allowed_length"],
        )
    name = {"repetition_penalty": "repeat_penalty"}.get(method, method)
    return generate.generate_penalized(
        llama, ids, max_new_tokens, penalty_last_n=params["last_n"], **{name: params["penalty"]}
    )


def stream_text_llama_cpp(
    llama: Any, prompt: str, method: str = "momentum", max_new_tokens: int = 64, seed: int = 0, **params: Any
) -> Iterator[tuple[str, int]]:
    """Continues ``prompt`` on a loaded ``Llama``, yielding ``(continuation so far, new tokens so far)`` per token.

    The arguments are checked before the first token is computed (a bad one raises at the call, not at the first
    ``next``). Generation stops at ``max_new_tokens`` or at an end-of-generation token.
    """
    p = check_llama_cpp_request(method, params)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"`prompt` must be a non-empty string, got {prompt!r}.")
    check_int("seed", seed, 0, 2**32 - 1)
    tokens = _tokens(llama, prompt, method, p, max_new_tokens, seed)  # checks max_new_tokens against the context
    return _stream(llama, tokens)


def _stream(llama: Any, tokens: Iterator[int]) -> Iterator[tuple[str, int]]:
    new: list[int] = []
    for token in tokens:
        new.append(token)
        # the whole continuation is decoded each time: a character split over two tokens appears once complete
        yield llama.detokenize(new).decode("utf-8", errors="ignore"), len(new)


def generate_text_llama_cpp(
    llama: Any, prompt: str, method: str = "momentum", max_new_tokens: int = 64, seed: int = 0, **params: Any
) -> str:
    """The continuation of ``prompt`` (without it) by ``method``; see :func:`stream_text_llama_cpp`."""
    text = ""
    for text_so_far, _ in stream_text_llama_cpp(llama, prompt, method, max_new_tokens, seed, **params):
        text = text_so_far
    return text


def write_stream(stream: Iterator[tuple[str, int]], out: IO[str] | None = None) -> dict[str, Any]:
    """Writes a stream's text to ``out`` (stdout) as it grows, then a newline; returns the text, the number of new
    tokens and the tokens per second."""
    out = out or sys.stdout
    text, count, start = "", 0, time.perf_counter()
    for text_so_far, so_far in stream:
        out.write(text_so_far[len(text) :])
        out.flush()
        text, count = text_so_far, so_far
    out.write("\n")
    seconds = time.perf_counter() - start
    return {"text": text, "new_tokens": count, "tokens_per_second": count / max(seconds, 1e-9)}
