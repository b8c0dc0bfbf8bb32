"""Contrastive search (Su et al. 2022) as a transformers 5 ``custom_generate`` callable, offline.

transformers 5 removed contrastive search from the library; ``generate(penalty_alpha=..., top_k=...)`` now loads the
remote-code repository ``transformers-community/contrastive-search`` from the Hub (network and
``trust_remote_code=True``). This module is a self-contained implementation for decoder-only models (the scoring
math is :mod:`inertia.core.decoding.contrastive`):

    x_t = argmax_{v ∈ V^(k)} { (1 − α) · p(v | x_<t) − α · max_{j<t} cos(h_v, h_{x_j}) },

where ``V^(k)`` are the k most probable tokens (after the config's logits processors), ``h_v`` is the last-layer
hidden state of candidate ``v`` appended to the context and ``h_{x_j}`` those of the context tokens, prompt included
(Su et al., *A Contrastive Framework for Neural Text Generation*, NeurIPS 2022, eq. 5; defaults α = 0.6, k = 5).

As in transformers 4, each step runs the k candidates of every row through the model as one batch of B·k single
tokens; the candidates' logits become the next step's logits, so a step costs one forward of B·k tokens. Here the
key/value cache is kept at B·k rows for the whole generation (each row's k copies share the prefix) and re-aligned
to the chosen candidate with ``Cache.reorder_cache``, instead of being expanded and shrunk every step.

Example:
    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> _ = torch.manual_seed(0)
    >>> config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
    ...                      num_attention_heads=2, num_key_value_heads=1, pad_token_id=0, eos_token_id=None)
    >>> model = LlamaForCausalLM(config).eval()
    >>> out = model.generate(torch.tensor([[5, 6, 7, 8]]), custom_generate=contrastive_search,
    ...                      penalty_alpha=0.6, top_k=5, max_new_tokens=6)
    >>> tuple(out.shape)
    (1, 10)
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList
from transformers.cache_utils import DynamicCache
from transformers.generation.utils import GenerateDecoderOnlyOutput

from inertia.adapters.transformers.generate_checks import (
    cache_argument,
    check_greedy_generation_config,
    pad_token_id_of,
)
from inertia.core.decoding.contrastive import (
    DEFAULT_PENALTY_ALPHA,
    DEFAULT_TOP_K,
    contrastive_select,
    degeneration_penalty,
)
from inertia.core.validation import validate_penalty_alpha, validate_top_k

__all__ = [
    "DEFAULT_PENALTY_ALPHA",
    "DEFAULT_TOP_K",
    "contrastive_search",
    "contrastive_select",
    "degeneration_penalty",
]

# transformers >= 5.24 hands the KV cache over as `cache` (`past_key_values` is deprecated there); older 5.x releases
# as `past_key_values`. Both are accepted, and the model is called with whichever name its forward takes.
_CACHE_KWARGS = ("cache", "past_key_values")
_HANDLED_MODEL_KWARGS = {"attention_mask", "position_ids", "use_cache", "logits_to_keep", *_CACHE_KWARGS}


def _validate(penalty_alpha: Any, top_k: Any) -> tuple[float, int]:
    alpha = validate_penalty_alpha(penalty_alpha)
    return alpha, validate_top_k(top_k)


def contrastive_search(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    penalty_alpha: float | None = None,
    top_k: int | None = None,
    cs_streamer: Any = None,
    **model_kwargs: Any,
) -> Any:
    """Contrastive search as ``model.generate(**inputs, custom_generate=contrastive_search, penalty_alpha=0.6,
    top_k=5)``, for decoder-only models, fully offline.

    ``penalty_alpha`` and ``top_k`` keep their transformers 4 names; passed to ``generate`` they reach this function
    directly (they never enter the generation config). If they are not passed but the generation config has
    ``penalty_alpha`` set, the config's ``penalty_alpha`` and ``top_k`` are used; otherwise 0.6 and 5.
    ``penalty_alpha=0`` is greedy search. The config's logits processors (``min_new_tokens``,
    ``repetition_penalty``, ...) are applied to the logits before the top-k, as in transformers 4, and the stopping
    criteria (``max_new_tokens``, eos, ...) as in greedy search; finished rows are padded with the pad id.

    Args:
        model: a decoder-only transformers model (``generate`` passes itself).
        input_ids: ``[B, T]`` prompt ids prepared by ``generate`` (left padding with an attention mask is fine).
        logits_processor: processors prepared by ``generate``.
        stopping_criteria: stopping criteria prepared by ``generate``.
        generation_config: the prepared config (must select greedy search, or contrastive search via its fields).
        penalty_alpha: α in [0, 1], the weight of the degeneration penalty.
        top_k: k ≥ 1, the number of candidates per step.
        cs_streamer: a transformers streamer; receives the prompt, each new token and ``end()``. (``generate`` does
            not forward its own ``streamer`` argument to a ``custom_generate`` callable.)
        **model_kwargs: model inputs prepared by ``generate``: attention mask, position ids, an empty
            ``DynamicCache`` (as ``cache`` from transformers 5.24 on, ``past_key_values`` before); anything else is
            refused.

    Returns:
        ``[B, T + new]`` token ids, or a ``GenerateDecoderOnlyOutput`` (``sequences``, ``scores`` = processed logits,
        ``logits`` = raw logits of the chosen path) with ``return_dict_in_generate=True``.

    Raises:
        ValueError: for an encoder-decoder model, sampling or beam search, invalid ``penalty_alpha``/``top_k``,
            ``output_attentions``/``output_hidden_states``, a non-empty or non-dynamic cache, or unsupported model
            inputs. All before the first forward pass.
    """
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError("contrastive_search supports decoder-only models only.")
    check_greedy_generation_config(generation_config, "contrastive_search", allow_contrastive=True)
    if penalty_alpha is None and generation_config.penalty_alpha is not None:
        penalty_alpha = generation_config.penalty_alpha
        top_k = generation_config.top_k if top_k is None else top_k
    alpha, k = _validate(
        DEFAULT_PENALTY_ALPHA if penalty_alpha is None else penalty_alpha, DEFAULT_TOP_K if top_k is None else top_k
    )
    return_dict = bool(generation_config.return_dict_in_generate)
    if return_dict and (generation_config.output_attentions or generation_config.output_hidden_states):
        raise ValueError(
            "contrastive_search does not return attentions or hidden states; unset output_attentions/"
            "output_hidden_states."
        )
    unknown = sorted(
        key for key, value in model_kwargs.items() if key not in _HANDLED_MODEL_KWARGS and value is not None
    )
    if unknown:
        raise ValueError(f"contrastive_search does not support the model inputs {unknown}.")
    caches = [model_kwargs[name] for name in _CACHE_KWARGS if model_kwargs.get(name) is not None]
    cache = caches[0] if caches else None
    if cache is None:
        cache = DynamicCache(config=model.config)
    if not isinstance(cache, DynamicCache) or cache.get_seq_length() > 0:
        raise ValueError(
            "contrastive_search needs an empty DynamicCache (the default); static caches and continuing from a "
            f"filled cache are not supported (got {type(cache).__name__} of length {cache.get_seq_length()})."
        )
    vocab_check = model.get_output_embeddings()
    if vocab_check is not None and k > vocab_check.weight.shape[0]:
        raise ValueError(f"`top_k`={k} exceeds the vocabulary size ({vocab_check.weight.shape[0]}).")

    batch = input_ids.shape[0]
    given_mask = model_kwargs.get("attention_mask")  # `generate` drops an all-ones mask; we pass what it passes
    attention_mask = torch.ones_like(input_ids) if given_mask is None else given_mask
    position_ids = model_kwargs.get("position_ids")
    if position_ids is None:  # the usual left-padding positions
        position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    forward_params = inspect.signature(model.forward).parameters
    cache_name = cache_argument(model)
    extra = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}
    if "position_ids" in forward_params:
        extra["position_ids"] = position_ids
    pad_id = pad_token_id_of(generation_config)
    has_eos_criteria = any(hasattr(criteria, "eos_token_id") for criteria in stopping_criteria)
    if has_eos_criteria and pad_id is None:
        raise ValueError("contrastive_search needs a pad token id to pad finished rows; set `pad_token_id`.")

    if cs_streamer is not None:
        cs_streamer.put(input_ids.cpu())
    outputs = model(
        input_ids=input_ids,
        attention_mask=given_mask,
        use_cache=True,
        output_hidden_states=True,
        return_dict=True,
        **{cache_name: cache},
        **extra,
    )
    context_hidden = outputs.hidden_states[-1]  # [B, T, D]
    next_logits = outputs.logits[:, -1].to(dtype=torch.float32)
    del outputs
    cache.batch_repeat_interleave(k)  # each row's k candidates share its prefix
    rows = torch.arange(batch, device=input_ids.device)
    last_position = position_ids[:, -1]
    unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)
    all_scores: tuple[torch.Tensor, ...] = ()
    all_logits: tuple[torch.Tensor, ...] = ()

    while True:
        processed = logits_processor(input_ids, next_logits)
        if return_dict and generation_config.output_scores:
            all_scores += (processed,)
        if return_dict and generation_config.output_logits:
            all_logits += (next_logits,)
        top_probs, top_ids = torch.softmax(processed, dim=-1).topk(k, dim=-1)  # V^(k)
        top_logits = processed.gather(1, top_ids)

        # One forward of the B·k candidates against their row's prefix.
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, 1)], dim=1)
        last_position = last_position + 1
        step_extra = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}
        if "position_ids" in forward_params:
            step_extra["position_ids"] = last_position.repeat_interleave(k).unsqueeze(1)
        outputs = model(
            input_ids=top_ids.reshape(-1, 1),
            attention_mask=None if given_mask is None else attention_mask.repeat_interleave(k, dim=0),
            use_cache=True,
            output_hidden_states=True,
            return_dict=True,
            **{cache_name: cache},
            **step_extra,
        )
        candidate_hidden = outputs.hidden_states[-1][:, -1].reshape(batch, k, -1)
        candidate_logits = outputs.logits[:, -1].reshape(batch, k, -1)
        del outputs

        penalty = degeneration_penalty(context_hidden, attention_mask[:, :-1], candidate_hidden)
        chosen = contrastive_select(top_probs, top_logits, penalty, alpha)  # [B]
        next_tokens = top_ids[rows, chosen]
        if has_eos_criteria:
            next_tokens = torch.where(unfinished, next_tokens, pad_id)
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
        context_hidden = torch.cat([context_hidden, candidate_hidden[rows, chosen][:, None]], dim=1)
        next_logits = candidate_logits[rows, chosen].to(dtype=torch.float32)
        # Every one of a row's k cache rows now takes the chosen candidate's entries.
        cache.reorder_cache((rows * k + chosen).repeat_interleave(k))
        if cs_streamer is not None:
            cs_streamer.put(next_tokens.cpu())
        unfinished = unfinished & ~stopping_criteria(input_ids, all_scores or None)
        if not bool(unfinished.any()):
            break

    if cs_streamer is not None:
        cs_streamer.end()
    if return_dict:
        return GenerateDecoderOnlyOutput(
            sequences=input_ids,
            scores=all_scores if generation_config.output_scores else None,
            logits=all_logits if generation_config.output_logits else None,
        )
    return input_ids
