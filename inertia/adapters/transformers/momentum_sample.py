"""``custom_generate`` entry point for the momentum penalty (our extension to sampling): :func:`momentum_sample`.

``generate(..., custom_generate=momentum_sample, do_sample=True, mp_alpha=...)`` runs transformers' own sampling (or
greedy) loop with a :class:`~inertia.adapters.transformers.momentum_penalty.MomentumPenaltyLogitsProcessor` placed
where ``generate`` places a user's processor: after the processors of the generation config, before the sampling
warpers. Over passing the processor as ``logits_processor=`` it adds the checks of the generation mode and exact
left padding from the prompt's attention mask. As for :func:`inertia.decoders.momentum_decode`, the streamer is
passed as ``mp_streamer`` (``generate`` keeps its own ``streamer`` from a callable).

Example:
    >>> import torch
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> _ = torch.manual_seed(0)
    >>> tiny = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    >>> model = LlamaForCausalLM(LlamaConfig(vocab_size=32, pad_token_id=0, eos_token_id=None, **tiny)).eval()
    >>> out = model.generate(torch.tensor([[5, 6, 7, 8]]), custom_generate=momentum_sample, mp_alpha=0.5,
    ...                      do_sample=True, top_p=0.95, max_new_tokens=8)
    >>> tuple(out.shape)
    (1, 12)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

from inertia.adapters.transformers.generate_checks import (
    check_single_sequence_config,
    insert_before_warpers,
    pad_token_id_of,
)
from inertia.adapters.transformers.logits_processor import MomentumDecodingLogitsProcessor
from inertia.adapters.transformers.momentum_penalty import MomentumPenaltyLogitsProcessor
from inertia.core.decoding.momentum import DEFAULT_RESISTANCE
from inertia.core.decoding.momentum_penalty import DEFAULT_PENALTY_ALPHA

__all__ = ["momentum_sample"]


def momentum_sample(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    mp_alpha: float = DEFAULT_PENALTY_ALPHA,
    mp_resistance: str | Sequence[float] = DEFAULT_RESISTANCE,
    mp_max_ngram: int | None = None,
    mp_streamer: Any = None,
    **model_kwargs: Any,
) -> Any:
    """Sampling (or greedy search) with the momentum penalty, as ``model.generate(custom_generate=momentum_sample)``.

    Checks the generation config (one beam; greedy search or sampling, no contrastive/DoLa/assisted mode), inserts a
    :class:`~inertia.adapters.transformers.momentum_penalty.MomentumPenaltyLogitsProcessor` before the warpers
    ``generate`` built from the config (temperature, top-k, top-p, min-p...), and runs transformers' own loop
    (``GenerationMixin._sample``, private API of transformers 5). Returns what ``generate`` returns. With
    ``mp_alpha=0`` the result is bit for bit that of ``generate`` without it, under the same seed.

    Args:
        model: the model (``generate`` passes itself).
        input_ids: prompt ids prepared by ``generate``.
        logits_processor: processors prepared by ``generate`` (config-driven ones, the user's, then the warpers).
        stopping_criteria: stopping criteria prepared by ``generate``.
        generation_config: the prepared config (``do_sample``, ``temperature``, ``top_p``, ... as usual).
        mp_alpha: α ≥ 0 in nats per unit of R (0.2).
        mp_resistance: the resistance table or preset name.
        mp_max_ngram: N, the longest n-gram looked up (``None``: ``len(resistance) - 1``).
        mp_streamer: a transformers streamer; it receives the prompt, each new token, then ``end()``.
        **model_kwargs: model inputs prepared by ``generate`` (attention mask, cache, ...).

    Raises:
        ValueError: for beam search or a mode other than greedy search and sampling, for an invalid ``mp_*`` value,
            or if the processor list already holds a momentum processor. All before the first forward pass.

    Example:
        >>> from inertia.decoders import momentum_sample
        >>> # out = model.generate(**inputs, custom_generate=momentum_sample, mp_alpha=0.2, do_sample=True,
        >>> #                      temperature=0.8, top_p=0.95, max_new_tokens=128)
    """
    check_single_sequence_config(generation_config, "momentum_sample")
    prompt_mask = model_kwargs.get("attention_mask")
    if prompt_mask is None:  # no mask: the model attends to every prompt token, so every one is a graph node
        prompt_mask = torch.ones_like(input_ids)
    processor = MomentumPenaltyLogitsProcessor(
        alpha=mp_alpha,
        resistance=mp_resistance,
        max_ngram=mp_max_ngram,
        pad_token_id=pad_token_id_of(generation_config),
        prompt_attention_mask=prompt_mask,  # exact padding, even when pad == eos == bos
    )
    momentum = (MomentumPenaltyLogitsProcessor, MomentumDecodingLogitsProcessor)
    if any(isinstance(existing, momentum) for existing in logits_processor):
        raise ValueError(
            "momentum_sample adds its own MomentumPenaltyLogitsProcessor, but `logits_processor` already holds a "
            "momentum processor; use either custom_generate=momentum_sample or the processor, not both (and never "
            "MomentumDecodingLogitsProcessor with sampling)."
        )
    if mp_streamer is not None:
        mp_streamer.put(input_ids.cpu())
    return model._sample(
        input_ids,
        logits_processor=insert_before_warpers(logits_processor, processor),
        stopping_criteria=stopping_criteria,
        generation_config=generation_config,
        synced_gpus=False,
        streamer=mp_streamer,
        **model_kwargs,
    )
