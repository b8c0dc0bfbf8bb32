"""`generate_text`: one call for every decoding method the benchmarks compare, by name.

Example:
    >>> from inertia.pipelines.text_generation import TEXT_METHODS, generation_kwargs
    >>> sorted(TEXT_METHODS)[:3]
    ['contrastive', 'greedy', 'momentum']
    >>> generation_kwargs("momentum", alpha=0.3)["md_alpha"]
    0.3
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from inertia.core.lm_attention.config import parse_lm_attention
from inertia.core.validation import check_int, check_range, validate_alpha, validate_penalty_alpha, validate_top_k

TEXT_METHODS: dict[str, dict[str, Any]] = {
    "greedy": {},
    "momentum": {"alpha": 0.2, "top_k": 5},
    "contrastive": {"penalty_alpha": 0.6, "top_k": 5},
    "nucleus": {"top_p": 0.95},
    # our momentum penalty (eq. (4) of inertia.core.decoding.momentum_penalty) in front of nucleus sampling
    "momentum_penalty": {"alpha": 0.2, "top_p": 0.95},
    "top_k": {"top_k": 50},
    "repetition_penalty": {"penalty": 1.2},
    "no_repeat_ngram": {"n": 3},
}
"""Decoding methods and their parameters with defaults (the settings of the decoding benchmarks)."""

SAMPLING_METHODS = ("nucleus", "top_k", "momentum_penalty")
"""Methods that sample (seeded by ``seed``)."""

PARAM_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "momentum": {"alpha": (0.0, 1.0), "top_k": (1, 20)},
    "momentum_penalty": {"alpha": (0.0, 1.0)},
}
"""The products' ranges (``inertia generate text --param``, the demo's controls, which are built from them), where
they are narrower than the parameters' own checks: momentum decoding's α in [0, 1] (the paper uses 0.2; at 1 every
revisit costs a full logit) and its candidate pool k in [1, 20] (the paper uses 5); the momentum penalty's α in
[0, 1] too, the same slider (0.2 by default; at 1 re-entering a 4-gram costs 4 nats)."""


def check_method(method: str, **params: Any) -> dict[str, Any]:
    """The parameters of ``method`` (its defaults overridden by ``params``), checked; imports nothing heavy.

    Raises:
        ValueError: an unknown method (the message lists them), a parameter the method does not take, or a value
            out of its range.
    """
    if method not in TEXT_METHODS:
        raise ValueError(f"`method` must be one of {', '.join(sorted(TEXT_METHODS))}, got {method!r}.")
    unknown = sorted(set(params) - set(TEXT_METHODS[method]))
    if unknown:
        valid = sorted(TEXT_METHODS[method]) or "none"
        raise ValueError(f"`method`={method!r} takes the parameters {valid}, got {unknown}.")
    p = {**TEXT_METHODS[method], **params}
    _check_values(method, p)
    return p


def generation_kwargs(method: str, *, prompt_attention_mask: Any = None, **params: Any) -> dict[str, Any]:
    """The ``model.generate`` keyword arguments of ``method`` with ``params`` overriding its defaults.

    ``prompt_attention_mask`` (the tokenised prompts' ``[B, T0]`` mask) tells the momentum penalty which positions
    are left padding, so that a padded batch is penalised as its prompts one by one; other methods ignore it.

    Raises:
        ValueError: as :func:`check_method`, before anything heavy is imported.
    """
    p = check_method(method, **params)
    if method == "greedy":
        return {"do_sample": False}
    if method == "momentum":
        from inertia.decoders import momentum_decode

        return {"do_sample": False, "custom_generate": momentum_decode, "md_alpha": p["alpha"], "md_top_k": p["top_k"]}
    if method == "contrastive":
        from inertia.decoders import contrastive_search

        return {"do_sample": False, "custom_generate": contrastive_search, **p}
    if method == "nucleus":
        return {"do_sample": True, "top_p": p["top_p"], "top_k": 0}
    if method == "momentum_penalty":
        from transformers import LogitsProcessorList

        from inertia.decoders import MomentumPenaltyLogitsProcessor

        penalty = MomentumPenaltyLogitsProcessor(p["alpha"], prompt_attention_mask=prompt_attention_mask)
        return {"do_sample": True, "top_p": p["top_p"], "top_k": 0, "logits_processor": LogitsProcessorList([penalty])}
    if method == "top_k":
        return {"do_sample": True, "top_k": p["top_k"]}
    if method == "repetition_penalty":
        return {"do_sample": False, "repetition_penalty": p["penalty"]}
    return {"do_sample": False, "no_repeat_ngram_size": p["n"]}


def _check_values(method: str, p: dict[str, Any]) -> None:
    """Range checks of every method's parameters, before any model is loaded."""
    if "alpha" in p and method == "momentum":  # the momentum penalty's α: its range below names it
        validate_alpha(p["alpha"])
    if "penalty_alpha" in p:
        validate_penalty_alpha(p["penalty_alpha"])
    if "top_k" in p:
        validate_top_k(p["top_k"])
    if "top_p" in p and not (_is_number(p["top_p"]) and 0.0 < p["top_p"] <= 1.0):
        raise ValueError(f"`top_p` must be a number in (0, 1], got {p['top_p']!r}.")
    if "penalty" in p and not (_is_number(p["penalty"]) and p["penalty"] > 0):
        raise ValueError(f"`penalty` must be a finite number > 0 (1 is no penalty), got {p['penalty']!r}.")
    if "n" in p and (isinstance(p["n"], bool) or not isinstance(p["n"], int) or p["n"] < 1):
        raise ValueError(f"`n` must be an integer >= 1, got {p['n']!r}.")
    for name, (low, high) in PARAM_RANGES.get(method, {}).items():
        if isinstance(low, int) and isinstance(high, int):
            check_int(name, p[name], low, high)
        else:
            check_range(name, p[name], low, high)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_context(model: Any, prompt_tokens: int, max_new_tokens: int) -> None:
    """Refuses a prompt that, with ``max_new_tokens`` more, exceeds the model's context (its config's
    ``max_position_embeddings``; no check when the config states none).

    Raises:
        ValueError: naming ``prompt`` and ``max_new_tokens``, with the counts and the context length.
    """
    config = getattr(model, "config", None)
    context = getattr(config, "max_position_embeddings", None)
    if isinstance(context, int) and prompt_tokens + max_new_tokens > context:
        raise ValueError(
            f"`prompt` is {prompt_tokens} tokens; with `max_new_tokens`={max_new_tokens} that is more than the "
            f"model's context of {context} tokens: shorten the prompt or ask for fewer tokens."
        )


def generate_text(
    model: Any,
    tokenizer: Any,
    prompt: str | list[str],
    method: str = "momentum",
    max_new_tokens: int = 64,
    seed: int = 0,
    streamer: Any = None,
    attention: str = "off",
    **params: Any,
) -> str | list[str]:
    """Continues ``prompt`` (a string or a batch of them) with a decoding method chosen by name.

    Args:
        model, tokenizer: e.g. from :func:`inertia.pipelines.load_text_model` (left padding for batches).
        prompt: the text to continue, or a non-empty list of texts (generated as one left-padded batch).
        method: one of :data:`TEXT_METHODS` (``"momentum"``, ``"greedy"``, ``"contrastive"``, ``"nucleus"``,
            ``"momentum_penalty"`` (nucleus sampling after our momentum penalty), ...).
        max_new_tokens: new tokens per prompt, >= 1.
        seed: seeds the sampling methods (:data:`SAMPLING_METHODS`), so a call is repeatable.
        streamer: a transformers streamer receiving the tokens as they are generated (batch of one only).
        attention: ``"off"``, or ``"momentum"`` / ``"momentum:<eta>"`` for Dai et al.'s momentum attention during this
            call only (:mod:`inertia.adapters.transformers.attention_interface`; the model is restored afterwards). Experimental: see docs/methods/lm-momentum-attention.md.
        **params: the method's parameters (:data:`TEXT_METHODS`), e.g. ``alpha=0.2, top_k=5`` for momentum.

    Returns:
        The continuation(s) without the prompt, special tokens removed: a string for a string prompt, else a list.

    Raises:
        ValueError: an unknown method or parameter, an empty prompt, a bad ``max_new_tokens``, or a prompt that with
            ``max_new_tokens`` more tokens does not fit the model's context (checked before generating).
    """
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(f"`prompt` must be a non-empty string or a non-empty list of them, got {prompt!r}.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be an int >= 1, got {max_new_tokens!r}.")
    import torch

    from inertia.adapters.transformers.attention_interface import lm_momentum_attention

    momentum = parse_lm_attention(attention)
    check_method(method, **params)  # before the prompt is tokenised
    if streamer is not None and len(prompts) != 1:
        raise ValueError(f"`streamer` needs a single prompt, got {len(prompts)}.")
    device = next(model.parameters()).device
    inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    check_context(model, inputs["input_ids"].shape[1], int(max_new_tokens))
    kwargs = generation_kwargs(method, prompt_attention_mask=inputs.get("attention_mask"), **params)
    if streamer is not None:
        kwargs[{"momentum": "md_streamer", "contrastive": "cs_streamer"}.get(method, "streamer")] = streamer
    if method in SAMPLING_METHODS:
        torch.manual_seed(seed)
    with torch.no_grad(), lm_momentum_attention(model, momentum):
        out = model.generate(
            **inputs, max_new_tokens=int(max_new_tokens), pad_token_id=tokenizer.pad_token_id, **kwargs
        )
    texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return texts[0] if isinstance(prompt, str) else texts
